#include "ferry/core/actor_submitter.h"

#include "ferry/common/logging.h"
#include "ferry/core/error_value.h"
#include "ferry/object/inline_value.h"

namespace ferry::core {

proto::PushTaskReply ErrorReplyFor(const proto::TaskSpec& spec, const Status& cause) {
  proto::PushTaskReply reply;
  proto::ObjectValueProto error = MakeErrorValue(cause);
  for (int i = 0; i < spec.return_ids_size(); ++i) *reply.add_returns() = error;
  return reply;
}

std::shared_ptr<ActorSubmitter::Actor> ActorSubmitter::GetActor(const ActorId& id) {
  MutexLock lock(mu_);
  auto& slot = actors_[id];
  if (!slot) slot = std::make_shared<Actor>();
  return slot;
}

uint64_t ActorSubmitter::ReserveSequence(const ActorId& id) {
  std::shared_ptr<Actor> actor = GetActor(id);
  MutexLock lock(actor->mu);
  return actor->next_seq++;
}

void ActorSubmitter::Submit(const ActorId& id, proto::TaskSpec spec, DoneFn done) {
  SubmitImpl(id, std::move(spec), std::move(done), true);
}

void ActorSubmitter::SubmitReserved(const ActorId& id, proto::TaskSpec spec, DoneFn done) {
  SubmitImpl(id, std::move(spec), std::move(done), false);
}

void ActorSubmitter::SubmitImpl(const ActorId& id, proto::TaskSpec spec, DoneFn done,
                                bool assign_sequence) {
  std::shared_ptr<Actor> actor = GetActor(id);
  Pending pending{std::move(spec), std::move(done)};
  Status dead;
  bool start_connect = false;
  {
    MutexLock lock(actor->mu);
    if (assign_sequence) pending.spec.set_sequence_number(actor->next_seq++);
    switch (actor->state) {
      case Actor::State::kAlive:
        // Sent under the lock so frames leave in sequence order; Send never
        // runs the completion inline (failures are posted).
        Send(actor->channel, actor->another_host, std::move(pending));
        return;
      case Actor::State::kDead: dead = actor->death_cause; break;
      case Actor::State::kNew:
        actor->state = Actor::State::kConnecting;
        start_connect = true;
        [[fallthrough]];
      case Actor::State::kConnecting: actor->queue.push_back(std::move(pending)); break;
    }
  }
  if (!dead.ok()) {
    Fail(pending, dead);
    return;
  }
  if (start_connect) {
    if (!background_->Post([this, id, actor] { Connect(id, actor); })) {
      MarkDead(id, Status::Unavailable("ferry is shutting down"));
    }
  }
}

void ActorSubmitter::Connect(const ActorId& id, std::shared_ptr<Actor> actor) {
  StatusOr<ActorConnection> connection = connector_->ConnectToActor(id);
  if (!connection.ok()) {
    MarkDead(id, connection.status());
    return;
  }
  std::shared_ptr<rpc::Channel> ch = connection->channel;
  ch->SetCloseCallback([this, id, actor](Status) {
    // Runs on the io thread: the cause lookup blocks, so do it elsewhere.
    if (!background_->Post([this, id, actor] { OnChannelClosed(id, actor); })) {
      MarkDead(id, Status::Unavailable("ferry is shutting down"));
    }
  });
  MutexLock lock(actor->mu);
  if (actor->state == Actor::State::kDead) {
    ch->Close();
    return;
  }
  actor->state = Actor::State::kAlive;
  actor->channel = ch;
  actor->another_host = connection->another_host;
  while (!actor->queue.empty()) {
    Send(ch, actor->another_host, std::move(actor->queue.front()));
    actor->queue.pop_front();
  }
}

void ActorSubmitter::OnChannelClosed(const ActorId& id, std::shared_ptr<Actor> actor) {
  Status cause = connector_->DeathCause(id);
  if (cause.ok()) {
    cause = Status::Unavailable("the actor's worker process exited (its connection closed)");
  }
  MarkDead(id, cause);
}

void ActorSubmitter::MarkDead(const ActorId& id, Status cause) {
  if (cause.code() != StatusCode::kUnavailable) {
    cause = Status::Unavailable(cause.message());
  }
  std::shared_ptr<Actor> actor = GetActor(id);
  std::deque<Pending> failed;
  std::shared_ptr<rpc::Channel> channel;
  {
    MutexLock lock(actor->mu);
    if (actor->state == Actor::State::kDead) return;
    actor->state = Actor::State::kDead;
    actor->death_cause = cause;
    failed.swap(actor->queue);
    channel = std::move(actor->channel);
  }
  if (channel) channel->Close();
  for (Pending& p : failed) Fail(p, cause);
}

void ActorSubmitter::Send(const std::shared_ptr<rpc::Channel>& channel, bool another_host,
                          Pending pending) {
  if (another_host) {
    for (proto::TaskArg& arg : *pending.spec.mutable_args()) {
      if (!arg.has_value() || !arg.value().has_shm()) continue;
      auto inlined = object::InlineForAnotherHost(arg.value());
      if (!inlined.ok()) {
        Fail(pending, inlined.status().WithContext("sending an argument to another host"));
        return;
      }
      *arg.mutable_value() = std::move(*inlined);
    }
  }
  auto done = std::make_shared<DoneFn>(std::move(pending.done));
  auto spec = std::make_shared<proto::TaskSpec>(std::move(pending.spec));
  channel->Call(proto::PUSH_TASK, *spec, [done, spec](Status status, std::string_view payload) {
    proto::PushTaskReply reply;
    if (status.ok() && !reply.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      status = Status::Internal("malformed PushTaskReply");
    }
    if (!status.ok()) {
      if (status.code() == StatusCode::kUnavailable) {
        status = Status::Unavailable("the actor died before finishing " + spec->method() + ": " +
                                     status.message());
      }
      (*done)(ErrorReplyFor(*spec, status));
      return;
    }
    (*done)(std::move(reply));
  });
}

void ActorSubmitter::Fail(Pending& pending, const Status& cause) {
  pending.done(ErrorReplyFor(pending.spec, cause));
}

bool ActorSubmitter::IsDead(const ActorId& id, Status* cause) {
  std::shared_ptr<Actor> actor;
  {
    MutexLock lock(mu_);
    auto it = actors_.find(id);
    if (it == actors_.end()) return false;
    actor = it->second;
  }
  MutexLock lock(actor->mu);
  if (actor->state != Actor::State::kDead) return false;
  if (cause != nullptr) *cause = actor->death_cause;
  return true;
}

void ActorSubmitter::Shutdown() {
  std::vector<std::pair<ActorId, std::shared_ptr<Actor>>> all;
  {
    MutexLock lock(mu_);
    for (auto& [id, actor] : actors_) all.emplace_back(id, actor);
  }
  for (auto& [id, actor] : all) MarkDead(id, Status::Unavailable("ferry was shut down"));
}

}  // namespace ferry::core
