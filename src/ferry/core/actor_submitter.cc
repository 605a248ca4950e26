#include "ferry/core/actor_submitter.h"

#include <algorithm>

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

namespace {

Status DiedDuring(const proto::TaskSpec& spec, const Status& cause) {
  return Status::Unavailable("the actor died before finishing " + spec.method() + ": " +
                             cause.message());
}

}  // namespace

std::shared_ptr<ActorSubmitter::Actor> ActorSubmitter::GetActor(const ActorId& id) {
  MutexLock lock(mu_);
  auto& slot = actors_[id];
  if (!slot) slot = std::make_shared<Actor>();
  return slot;
}

bool ActorSubmitter::MayRetry(const proto::TaskSpec& spec) {
  return spec.max_retries() < 0 || spec.attempt() < spec.max_retries();
}

void ActorSubmitter::Submit(const ActorId& id, proto::TaskSpec spec, DoneFn done) {
  done = Recorded(id, spec, std::move(done));
  Enqueue(id, GetActor(id), Pending{std::move(spec), std::move(done)});
}

ActorSubmitter::DoneFn ActorSubmitter::Recorded(const ActorId& actor, const proto::TaskSpec& spec,
                                                DoneFn done) {
  if (timeline_ == nullptr) return done;
  timeline_->CountCall();
  if (!timeline_->enabled()) return done;
  CallSpan span;
  auto task = TaskId::FromBinary(spec.task_id());
  if (task.ok()) span.task_id = *task;
  span.method = spec.is_creation() ? "__init__" : spec.method();
  span.actor = actor;
  span.submitted_us = Timeline::NowMicros();
  return [timeline = timeline_, span = std::move(span),
          done = std::move(done)](proto::PushTaskReply reply) mutable {
    span.replied_us = Timeline::NowMicros();
    timeline->AddCall(std::move(span));
    done(std::move(reply));
  };
}

uint64_t ActorSubmitter::Reserve(const ActorId& id) {
  std::shared_ptr<Actor> actor = GetActor(id);
  Pending place;
  place.ready = false;
  {
    MutexLock lock(actor->mu);
    place.ticket = actor->next_ticket++;
    if (actor->state == Actor::State::kDead) return place.ticket;  // SubmitReserved fails it
  }
  uint64_t ticket = place.ticket;
  Enqueue(id, actor, std::move(place));
  return ticket;
}

void ActorSubmitter::SubmitReserved(const ActorId& id, uint64_t ticket, proto::TaskSpec spec,
                                    DoneFn done) {
  std::shared_ptr<Actor> actor = GetActor(id);
  done = Recorded(id, spec, std::move(done));
  Pending pending{std::move(spec), std::move(done)};
  Status dead;
  {
    MutexLock lock(actor->mu);
    auto it = std::find_if(actor->queue.begin(), actor->queue.end(),
                           [&](const Pending& p) { return !p.ready && p.ticket == ticket; });
    if (it != actor->queue.end()) {
      it->spec = std::move(pending.spec);
      it->done = std::move(pending.done);
      it->ready = true;
      FlushLocked(id, actor);
      return;
    }
    // Dropped when the actor died.
    dead = actor->death_cause.ok() ? Status::Unavailable("the actor is dead") : actor->death_cause;
  }
  Fail(pending, dead);
}

void ActorSubmitter::Enqueue(const ActorId& id, const std::shared_ptr<Actor>& actor,
                             Pending pending) {
  Status dead;
  bool start_connect = false;
  {
    MutexLock lock(actor->mu);
    switch (actor->state) {
      case Actor::State::kAlive:
        actor->queue.push_back(std::move(pending));
        // Sent under the lock so frames leave in sequence order; sending
        // never runs a completion inline (failures are posted).
        FlushLocked(id, actor);
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
    if (pending.ready) Fail(pending, dead);
    return;
  }
  if (start_connect) {
    if (!background_->Post([this, id, actor] { Connect(id, actor); })) {
      MarkDead(id, Status::Unavailable("ferry is shutting down"));
    }
  }
}

void ActorSubmitter::FlushLocked(const ActorId& id, const std::shared_ptr<Actor>& actor) {
  while (actor->state == Actor::State::kAlive && !actor->queue.empty() &&
         actor->queue.front().ready) {
    Pending next = std::move(actor->queue.front());
    actor->queue.pop_front();
    if (!SendLocked(id, actor, std::move(next))) break;
  }
}

void ActorSubmitter::Connect(const ActorId& id, std::shared_ptr<Actor> actor) {
  StatusOr<ActorConnection> connection = connector_->ConnectToActor(id);
  if (!connection.ok()) {
    MarkDead(id, connection.status());
    return;
  }
  std::shared_ptr<rpc::Channel> ch = connection->channel;
  MutexLock lock(actor->mu);
  if (actor->state != Actor::State::kConnecting) {
    lock.Unlock();
    ch->Close();
    return;
  }
  const uint64_t number = actor->connection;
  ch->SetCloseCallback([this, id, actor, number](Status) {
    // Runs on the io thread: asking the Head blocks, so do it elsewhere.
    if (!background_->Post([this, id, actor, number] { OnChannelClosed(id, actor, number); })) {
      MarkDead(id, Status::Unavailable("ferry is shutting down"));
    }
  });
  actor->state = Actor::State::kAlive;
  actor->channel = ch;
  actor->another_host = connection->another_host;
  actor->incarnation = connection->incarnation;
  actor->may_restart = connection->may_restart;
  actor->next_seq = 0;
  FlushLocked(id, actor);
}

void ActorSubmitter::OnChannelClosed(const ActorId& id, std::shared_ptr<Actor> actor,
                                     uint64_t connection) {
  int incarnation;
  {
    MutexLock lock(actor->mu);
    if (actor->state != Actor::State::kAlive || actor->connection != connection) return;
    incarnation = actor->incarnation;
  }
  ActorFate fate = connector_->AwaitFate(id, incarnation);
  if (fate.restarting) {
    Restart(id, actor, connection, fate.cause);
    return;
  }
  Status cause = fate.cause;
  if (cause.ok()) {
    cause = Status::Unavailable("the actor's worker process exited (its connection closed)");
  }
  MarkDead(id, cause);
}

void ActorSubmitter::Restart(const ActorId& id, const std::shared_ptr<Actor>& actor,
                             uint64_t connection, const Status& cause) {
  // First, so that nothing re-sent below can race the owner's bookkeeping of
  // what the old process held.
  if (on_restart_) on_restart_(id, cause);
  std::vector<Pending> failed;
  {
    MutexLock lock(actor->mu);
    if (actor->state != Actor::State::kAlive || actor->connection != connection) return;
    actor->connection++;
    actor->state = Actor::State::kConnecting;
    actor->channel.reset();
    std::sort(actor->lost.begin(), actor->lost.end(), [](const Pending& a, const Pending& b) {
      return a.spec.sequence_number() < b.spec.sequence_number();
    });
    std::deque<Pending> retried;
    for (Pending& p : actor->lost) {
      if (MayRetry(p.spec)) {
        p.spec.set_attempt(p.spec.attempt() + 1);
        retried.push_back(std::move(p));
      } else {
        failed.push_back(std::move(p));
      }
    }
    actor->lost.clear();
    actor->queue.insert(actor->queue.begin(), std::make_move_iterator(retried.begin()),
                        std::make_move_iterator(retried.end()));
  }
  FERRY_LOG(INFO) << "actor " << id.Hex() << " restarts: " << cause.message();
  for (Pending& p : failed) Fail(p, DiedDuring(p.spec, cause));
  if (!background_->Post([this, id, actor] { Connect(id, actor); })) {
    MarkDead(id, Status::Unavailable("ferry is shutting down"));
  }
}

void ActorSubmitter::OnRestarting(const ActorId& id, int incarnation) {
  std::shared_ptr<rpc::Channel> stale;
  {
    std::shared_ptr<Actor> actor = GetActor(id);
    MutexLock lock(actor->mu);
    if (actor->state == Actor::State::kAlive && actor->incarnation < incarnation) {
      stale = actor->channel;
    }
  }
  if (stale) stale->Close();  // its close callback goes on as for any close
}

void ActorSubmitter::MarkDead(const ActorId& id, Status cause) {
  if (cause.code() != StatusCode::kUnavailable) {
    cause = Status::Unavailable(cause.message());
  }
  std::shared_ptr<Actor> actor = GetActor(id);
  std::deque<Pending> failed;
  std::vector<Pending> lost;
  std::shared_ptr<rpc::Channel> channel;
  {
    MutexLock lock(actor->mu);
    if (actor->state == Actor::State::kDead) return;
    actor->state = Actor::State::kDead;
    actor->death_cause = cause;
    failed.swap(actor->queue);
    lost.swap(actor->lost);
    channel = std::move(actor->channel);
  }
  if (channel) channel->Close();
  for (Pending& p : lost) Fail(p, DiedDuring(p.spec, cause));
  for (Pending& p : failed) {
    if (p.ready) Fail(p, cause);  // a reserved place fails in SubmitReserved
  }
}

bool ActorSubmitter::SendLocked(const ActorId& id, const std::shared_ptr<Actor>& actor,
                                Pending pending) {
  if (actor->another_host) {
    for (proto::TaskArg& arg : *pending.spec.mutable_args()) {
      if (!arg.has_value() || !arg.value().has_shm()) continue;
      auto inlined = object::InlineForAnotherHost(arg.value());
      if (!inlined.ok()) {
        // Not sent, so it takes no sequence number; completed off the lock.
        auto failed = std::make_shared<Pending>(std::move(pending));
        Status why = inlined.status().WithContext("sending an argument to another host");
        if (!background_->Post([failed, why] { Fail(*failed, why); })) Fail(*failed, why);
        return true;
      }
      *arg.mutable_value() = std::move(*inlined);
    }
  }
  pending.spec.set_sequence_number(actor->next_seq);
  pending.connection = actor->connection;
  auto shared = std::make_shared<Pending>(std::move(pending));
  bool sent =
      actor->channel->TryCall(proto::PUSH_TASK, shared->spec,
                              [this, id, actor, shared](Status status, std::string_view payload) {
                                OnReply(id, actor, std::move(*shared), std::move(status), payload);
                              });
  if (!sent) {
    // The connection closed before the task left: it waits, first in line,
    // for the actor's fate (its close callback is coming), never having run.
    actor->queue.push_front(std::move(*shared));
    return false;
  }
  actor->next_seq++;
  return true;
}

void ActorSubmitter::OnReply(const ActorId& id, const std::shared_ptr<Actor>& actor,
                             Pending pending, Status status, std::string_view payload) {
  proto::PushTaskReply reply;
  if (status.ok() && !reply.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    status = Status::Internal("malformed PushTaskReply");
  }
  if (!status.ok()) {
    if (status.code() == StatusCode::kUnavailable) {
      OnLost(id, actor, std::move(pending), status);
      return;
    }
    pending.done(ErrorReplyFor(pending.spec, status));
    return;
  }
  if (reply.returns_size() > 0 && reply.returns(0).retryable() && MayRetry(pending.spec)) {
    // An exception the task's retry_exceptions names: run it again, after
    // the tasks already sent (as Ray does).
    FERRY_LOG(INFO) << pending.spec.method() << " raised a retryable exception; retrying (attempt "
                    << pending.spec.attempt() + 2 << ")";
    pending.spec.set_attempt(pending.spec.attempt() + 1);
    pending.ready = true;
    Enqueue(id, actor, std::move(pending));
    return;
  }
  pending.done(std::move(reply));
}

void ActorSubmitter::OnLost(const ActorId& id, const std::shared_ptr<Actor>& actor, Pending pending,
                            const Status& status) {
  Status cause;
  {
    MutexLock lock(actor->mu);
    if (actor->state == Actor::State::kDead) {
      cause = actor->death_cause;
    } else if (pending.connection == actor->connection) {
      // Its fate decides (retried, or failed with the Head's cause: how the
      // process ended and its last output), so that once it fails, later
      // calls go to the restarted process. The close of the connection asks
      // the Head (ActorLocator::AwaitFate, bounded).
      actor->lost.push_back(std::move(pending));
      return;
    } else if (!actor->may_restart) {
      cause = status;
    } else {
      // The restart was already handled: retry now, first in line.
      if (MayRetry(pending.spec)) {
        pending.spec.set_attempt(pending.spec.attempt() + 1);
        actor->queue.push_front(std::move(pending));
        FlushLocked(id, actor);
        return;
      }
      cause = status;
    }
  }
  Fail(pending, DiedDuring(pending.spec, cause));
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
