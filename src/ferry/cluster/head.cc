#include "ferry/cluster/head.h"

#include <signal.h>
#include <unistd.h>

#include <asio.hpp>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"
#include "ferry/rpc/parse.h"

namespace ferry::cluster {

struct Head::Actor {
  proto::CreateActor spec;
  proto::ActorInfo info;
  ChildProcess child;
  bool exited = false;
  std::unique_ptr<asio::posix::stream_descriptor> exit_watch;
  std::unique_ptr<asio::steady_timer> start_timer;
  std::vector<rpc::Responder> settle_waiters;
  std::vector<rpc::Responder> exit_waiters;
};

namespace {

proto::StatusProto Unavailable(const std::string& message) {
  proto::StatusProto s;
  s.set_code(static_cast<int>(StatusCode::kUnavailable));
  s.set_message(message);
  return s;
}

}  // namespace

Head::Head(rpc::IoLoop& loop, rpc::Dispatcher& dispatcher, HeadOptions options)
    : loop_(loop), options_(std::move(options)) {
  auto bind = [this](void (Head::*fn)(std::string_view, rpc::Responder)) {
    return [this, fn](const std::shared_ptr<rpc::Channel>&, std::string_view payload,
                      rpc::Responder responder) { (this->*fn)(payload, std::move(responder)); };
  };
  dispatcher.Register(proto::CREATE_ACTOR, bind(&Head::HandleCreateActor));
  dispatcher.Register(proto::REGISTER_WORKER, bind(&Head::HandleRegisterWorker));
  dispatcher.Register(proto::ACTOR_READY, bind(&Head::HandleActorReady));
  dispatcher.Register(proto::GET_ACTOR_INFO, bind(&Head::HandleGetActorInfo));
  dispatcher.Register(proto::KILL_ACTOR, bind(&Head::HandleKillActor));
  dispatcher.Register(proto::KV_PUT, bind(&Head::HandleKvPut));
  dispatcher.Register(proto::KV_GET, bind(&Head::HandleKvGet));
  dispatcher.Register(proto::KV_DEL, bind(&Head::HandleKvDel));
}

Head::~Head() { Shutdown(); }

void Head::SetAddress(const std::string& address) {
  MutexLock lock(mu_);
  address_ = address;
}

std::shared_ptr<Head::Actor> Head::Find(const std::string& actor_id) {
  MutexLock lock(mu_);
  auto it = actors_.find(actor_id);
  return it == actors_.end() ? nullptr : it->second;
}

void Head::HandleCreateActor(std::string_view payload, rpc::Responder responder) {
  proto::CreateActor req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  auto actor = std::make_shared<Actor>();
  actor->spec = req;
  actor->info.set_actor_id(req.actor_id());
  actor->info.set_state(proto::ActorInfo::PENDING);
  actor->info.set_class_name(req.options().class_name());
  actor->info.set_name(req.options().name());
  WorkerId worker_id = WorkerId::Random();
  actor->info.set_worker_id(worker_id.Binary());
  std::string head_address;
  {
    MutexLock lock(mu_);
    if (shut_down_) {
      lock.Unlock();
      responder.ReplyError(Status::Unavailable("ferry is shutting down"));
      return;
    }
    const std::string& name = req.options().name();
    if (!name.empty()) {
      auto it = names_.find(name);
      if (it != names_.end()) {
        auto existing = actors_.find(it->second);
        if (existing != actors_.end() && existing->second->info.state() != proto::ActorInfo::DEAD) {
          lock.Unlock();
          responder.ReplyError(
              Status::AlreadyExists("an actor named '" + name + "' already exists"));
          return;
        }
      }
      names_[name] = req.actor_id();
    }
    actors_[req.actor_id()] = actor;
    head_address = address_;
  }
  auto actor_hex = ActorId::FromBinary(req.actor_id());
  std::vector<std::string> argv(req.worker_command().begin(), req.worker_command().end());
  auto child = spawner_.Spawn(argv, {{"FERRY_HEAD_ADDRESS", head_address},
                                     {"FERRY_TOKEN", options_.token},
                                     {"FERRY_SESSION", options_.session},
                                     {"FERRY_WORKER_ID", worker_id.Hex()},
                                     {"FERRY_ACTOR_ID", actor_hex.ok() ? actor_hex->Hex() : ""}});
  if (!child.ok()) {
    MarkDead(actor, "the actor's worker process could not be started: " + child.status().message());
    responder.Reply(proto::Empty());
    return;
  }
  {
    MutexLock lock(mu_);
    actor->child = *child;
    actor->info.set_pid(child->pid);
  }
  WatchExit(actor);
  actor->start_timer = std::make_unique<asio::steady_timer>(loop_.context());
  actor->start_timer->expires_after(Config::Get().worker_start_timeout);
  actor->start_timer->async_wait([this, actor](const asio::error_code& ec) {
    if (ec) return;
    bool pending;
    pid_t pid;
    {
      MutexLock lock(mu_);
      pending = actor->info.state() == proto::ActorInfo::PENDING;
      pid = actor->child.pid;
    }
    if (!pending) return;
    MarkDead(actor, "the actor's worker did not start within " +
                        std::to_string(Config::Get().worker_start_timeout.count() / 1000) +
                        " s (FERRY_WORKER_START_TIMEOUT_S)");
    if (pid > 0) kill(pid, SIGKILL);
  });
  responder.Reply(proto::Empty());
}

void Head::WatchExit(const std::shared_ptr<Actor>& actor) {
  int fd = dup(actor->child.pidfd);
  if (fd < 0) return;
  actor->exit_watch = std::make_unique<asio::posix::stream_descriptor>(loop_.context(), fd);
  actor->exit_watch->async_wait(asio::posix::stream_descriptor::wait_read,
                                [this, actor](const asio::error_code& ec) {
                                  if (ec == asio::error::operation_aborted) return;
                                  OnWorkerExit(actor);
                                });
}

void Head::OnWorkerExit(const std::shared_ptr<Actor>& actor) {
  int status;
  pid_t pid;
  std::vector<rpc::Responder> exit_waiters;
  {
    MutexLock lock(mu_);
    pid = actor->child.pid;
    status = TryReap(actor->child);
    if (actor->child.pidfd >= 0) close(actor->child.pidfd);
    actor->child.pidfd = -1;
    actor->exited = true;
    exit_waiters.swap(actor->exit_waiters);
  }
  if (actor->start_timer) actor->start_timer->cancel();
  MarkDead(actor, "the actor's worker process (pid " + std::to_string(pid) + ") " +
                      (status >= 0 ? DescribeWaitStatus(status) : std::string("exited")) +
                      " unexpectedly");
  for (auto& r : exit_waiters) r.Reply(proto::Empty());
}

void Head::MarkDead(const std::shared_ptr<Actor>& actor, const std::string& cause) {
  std::vector<rpc::Responder> waiters;
  proto::ActorInfo info;
  {
    MutexLock lock(mu_);
    if (actor->info.state() == proto::ActorInfo::DEAD) return;
    actor->info.set_state(proto::ActorInfo::DEAD);
    *actor->info.mutable_death_cause() = Unavailable(cause);
    waiters.swap(actor->settle_waiters);
    info = actor->info;
  }
  AnswerSettled(std::move(waiters), info);
}

void Head::AnswerSettled(std::vector<rpc::Responder> waiters, const proto::ActorInfo& info) {
  for (auto& r : waiters) r.Reply(info);
}

void Head::HandleRegisterWorker(std::string_view payload, rpc::Responder responder) {
  proto::RegisterWorker req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  auto actor = Find(req.actor_id());
  if (!actor) {
    responder.ReplyError(Status::NotFound("no actor is waiting for this worker"));
    return;
  }
  proto::RegisterWorkerReply reply;
  {
    MutexLock lock(mu_);
    if (actor->info.state() != proto::ActorInfo::PENDING) {
      lock.Unlock();
      responder.ReplyError(Status::FailedPrecondition("the actor is no longer starting"));
      return;
    }
    actor->info.set_address(req.address());
    actor->info.set_worker_id(req.worker_id());
    *reply.mutable_actor() = actor->spec;
  }
  responder.Reply(reply);
}

void Head::HandleActorReady(std::string_view payload, rpc::Responder responder) {
  proto::ActorReady req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  auto actor = Find(req.actor_id());
  if (!actor) {
    responder.ReplyError(Status::NotFound("unknown actor"));
    return;
  }
  if (actor->start_timer) actor->start_timer->cancel();
  if (req.has_creation_error() && req.creation_error().code() != 0) {
    MarkDead(actor,
             "the actor's constructor raised an exception:\n" + req.creation_error().message());
    responder.Reply(proto::Empty());
    return;
  }
  std::vector<rpc::Responder> waiters;
  proto::ActorInfo info;
  {
    MutexLock lock(mu_);
    if (actor->info.state() == proto::ActorInfo::PENDING) {
      actor->info.set_state(proto::ActorInfo::ALIVE);
      waiters.swap(actor->settle_waiters);
    }
    info = actor->info;
  }
  AnswerSettled(std::move(waiters), info);
  responder.Reply(proto::Empty());
}

void Head::HandleGetActorInfo(std::string_view payload, rpc::Responder responder) {
  proto::GetActorInfo req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  std::shared_ptr<Actor> actor;
  {
    MutexLock lock(mu_);
    std::string id = req.actor_id();
    if (id.empty()) {
      auto it = names_.find(req.name());
      if (it != names_.end()) id = it->second;
    }
    auto it = actors_.find(id);
    if (it != actors_.end()) actor = it->second;
    if (actor && req.wait_until_settled() && actor->info.state() == proto::ActorInfo::PENDING) {
      actor->settle_waiters.push_back(std::move(responder));
      return;
    }
  }
  if (!actor) {
    responder.ReplyError(Status::NotFound(
        req.name().empty() ? "unknown actor" : "no actor named '" + req.name() + "'"));
    return;
  }
  proto::ActorInfo info;
  {
    MutexLock lock(mu_);
    info = actor->info;
  }
  responder.Reply(info);
}

void Head::HandleKillActor(std::string_view payload, rpc::Responder responder) {
  proto::KillActor req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  auto actor = Find(req.actor_id());
  if (!actor) {
    responder.ReplyError(Status::NotFound("unknown actor"));
    return;
  }
  MarkDead(actor, "the actor was killed by ferry.kill()");
  pid_t pid;
  {
    MutexLock lock(mu_);
    pid = actor->exited ? -1 : actor->child.pid;
    if (pid > 0) actor->exit_waiters.push_back(std::move(responder));
  }
  if (pid > 0) {
    kill(pid, SIGKILL);  // the exit watch answers the responder
  } else {
    responder.Reply(proto::Empty());
  }
}

void Head::HandleKvPut(std::string_view payload, rpc::Responder responder) {
  proto::KvPut req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  if (!kv_.Put(req.key(), req.value(), req.overwrite())) {
    responder.ReplyError(Status::AlreadyExists("key '" + req.key() + "' exists"));
    return;
  }
  responder.Reply(proto::Empty());
}

void Head::HandleKvGet(std::string_view payload, rpc::Responder responder) {
  proto::KvGet req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  auto shared = std::make_shared<rpc::Responder>(std::move(responder));
  auto answer = [shared](std::optional<std::string> v) {
    proto::KvGetReply reply;
    reply.set_found(v.has_value());
    if (v) reply.set_value(std::move(*v));
    shared->Reply(reply);
  };
  if (req.wait_ms() <= 0) {
    answer(kv_.Get(req.key()));
    return;
  }
  uint64_t token = kv_.GetOrWait(req.key(), answer);
  if (token == 0) return;  // answered already
  auto timer = std::make_shared<asio::steady_timer>(loop_.context());
  timer->expires_after(ClampedMillis(req.wait_ms()));
  timer->async_wait([this, timer, token](const asio::error_code&) { kv_.Cancel(token); });
}

void Head::HandleKvDel(std::string_view payload, rpc::Responder responder) {
  proto::KvDel req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  kv_.Delete(req.key(), req.prefix());
  responder.Reply(proto::Empty());
}

size_t Head::NumLiveWorkers() {
  MutexLock lock(mu_);
  size_t n = 0;
  for (auto& [id, actor] : actors_) n += (!actor->exited && actor->child.pid > 0) ? 1 : 0;
  return n;
}

std::vector<int> Head::WorkerPids() {
  MutexLock lock(mu_);
  std::vector<int> pids;
  for (auto& [id, actor] : actors_) {
    if (!actor->exited && actor->child.pid > 0) pids.push_back(actor->child.pid);
  }
  return pids;
}

void Head::Shutdown() {
  std::vector<std::shared_ptr<Actor>> all;
  {
    MutexLock lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
    for (auto& [id, actor] : actors_) all.push_back(actor);
  }
  for (auto& actor : all) MarkDead(actor, "ferry was shut down");
  // Kill all first, then reap: the deaths overlap.
  for (auto& actor : all) {
    MutexLock lock(mu_);
    if (actor->child.pid > 0 && !actor->exited) kill(actor->child.pid, SIGKILL);
  }
  Deadline deadline = Deadline::After(Config::Get().kill_grace + std::chrono::seconds(5));
  for (auto& actor : all) {
    ChildProcess child;
    {
      MutexLock lock(mu_);
      child = actor->child;
      actor->child = ChildProcess();
      actor->exited = true;
    }
    Status s = KillAndReap(child, deadline);
    if (!s.ok()) FERRY_LOG(ERROR) << s;
  }
}

}  // namespace ferry::cluster
