// Head, the actor lifecycle: creation and placement, workers registering
// and reporting ready, deaths and restarts, lookups and kills. The class,
// the lifecycle and the thread contract: head.h.

#include <algorithm>

#include <asio.hpp>

#include "ferry/cluster/head.h"
#include "ferry/cluster/head_rows.h"
#include "ferry/common/config.h"
#include "ferry/common/logging.h"
#include "ferry/rpc/parse.h"

namespace ferry::cluster {

using namespace head_internal;  // NOLINT: the Head's own helpers

std::shared_ptr<Head::Actor> Head::Find(const std::string& actor_id) {
  MutexLock lock(mu_);
  auto it = actors_.find(actor_id);
  return it == actors_.end() ? nullptr : it->second;
}

void Head::HandleCreateActor(const ChannelPtr& channel, std::string_view payload,
                             rpc::Responder responder) {
  proto::CreateActor req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  auto actor = std::make_shared<Actor>();
  actor->spec = req;
  actor->request = RequestFor(req.options());
  actor->info.set_actor_id(req.actor_id());
  actor->info.set_state(proto::ActorInfo::PENDING);
  actor->info.set_class_name(req.options().class_name());
  actor->info.set_name(req.options().name());
  actor->info.set_max_restarts(req.options().max_restarts());
  actor->info.set_handle_meta(req.options().handle_meta());
  actor->info.set_worker_id(WorkerId::Random().Binary());
  Placement placement;
  {
    MutexLock lock(mu_);
    if (shut_down_) {
      lock.Unlock();
      responder.ReplyError(Status::Unavailable("ferry is shutting down"));
      return;
    }
    const std::string& caller = channel ? channel->peer().worker_id() : std::string();
    if (!caller.empty() && drivers_.count(caller) != 0) {
      actor->creator = caller;
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
    }
    // The creator hears of the actor's end too: it holds the constructor's
    // arguments until then when the actor may restart.
    if (channel) actor->subscribers.push_back(channel);
    placement = PlaceLocked(actor);
    if (placement.decision == Placement::kInfeasible) {
      lock.Unlock();
      responder.ReplyError(Status::InvalidArgument(
          "cannot create actor " + req.options().class_name() + ": " + placement.reason));
      return;
    }
    if (!name.empty()) names_[name] = req.actor_id();
    actors_[req.actor_id()] = actor;
    if (placement.decision == Placement::kWait) {
      actor->info.set_pending_reason(placement.reason);
      queued_.push_back(actor);
    }
  }
  responder.Reply(proto::Empty());
  StartTimers(actor);
  if (placement.decision == Placement::kPlaced) Launch(actor);
}

Placement Head::PlaceLocked(const std::shared_ptr<Actor>& actor) {
  std::vector<NodeView> views;
  for (const auto& node : nodes_) views.push_back(node->view);
  Placement p = Place(views, actor->request);
  if (p.decision != Placement::kPlaced) return p;
  std::shared_ptr<Node> node = nodes_[p.node_index];
  Subtract(node->view.available, actor->request.to_hold);
  node->view.num_actors++;
  auto gpus = actor->request.to_hold.find(kGpu);
  int want = gpus == actor->request.to_hold.end() ? 0 : static_cast<int>(std::ceil(gpus->second));
  for (int i = 0; i < want && !node->free_gpus.empty(); ++i) {
    actor->gpus.push_back(node->free_gpus.front());
    node->free_gpus.erase(node->free_gpus.begin());
  }
  actor->placed = true;
  actor->node = node;
  actor->info.set_node_id(node->view.id.Binary());
  actor->info.set_node_ip(node->ip);
  return p;
}

void Head::ReleaseLocked(Actor& actor) {
  if (!actor.placed) return;
  actor.placed = false;
  Node& node = *actor.node;
  if (!node.view.alive) return;
  Add(node.view.available, actor.request.to_hold);
  node.view.num_actors--;
  node.free_gpus.insert(node.free_gpus.end(), actor.gpus.begin(), actor.gpus.end());
  std::sort(node.free_gpus.begin(), node.free_gpus.end());
}

std::map<std::string, std::string> Head::WorkerEnv(const Actor& actor, const Node& node) {
  std::map<std::string, std::string> env = {
      {"FERRY_HEAD_ADDRESS", address_},    {"FERRY_TOKEN", options_.token},
      {"FERRY_SESSION", options_.session}, {"FERRY_NODE_ID", node.view.id.Hex()},
      {"FERRY_GPU_IDS", Join(actor.gpus)},
  };
  auto worker = WorkerId::FromBinary(actor.info.worker_id());
  auto actor_hex = ActorId::FromBinary(actor.info.actor_id());
  env["FERRY_WORKER_ID"] = worker.ok() ? worker->Hex() : "";
  env["FERRY_ACTOR_ID"] = actor_hex.ok() ? actor_hex->Hex() : "";
  if (!node.ip.empty()) env["FERRY_NODE_IP"] = node.ip;
  if (!actor.gpus.empty()) env["CUDA_VISIBLE_DEVICES"] = Join(actor.gpus);
  return env;
}

void Head::Launch(const std::shared_ptr<Actor>& actor) {
  proto::StartWorker start;
  std::shared_ptr<Node> node;
  {
    MutexLock lock(mu_);
    if (actor->info.state() == proto::ActorInfo::DEAD || actor->launched) return;
    actor->launched = true;
    node = actor->node;
    start.set_actor_id(actor->info.actor_id());
    start.set_worker_id(actor->info.worker_id());
    start.set_display_name(actor->info.class_name());
    *start.mutable_worker_command() = actor->spec.worker_command();
    for (auto& [k, v] : WorkerEnv(*actor, *node)) (*start.mutable_env())[k] = v;
  }
  if (node->is_local) {
    StatusOr<int> pid = local_agent_.Start(start);
    if (!pid.ok()) {
      MarkDead(actor, "the actor's worker process could not be started: " + pid.status().message());
      OnWorkerExit(actor->info.actor_id(), "never started");
      return;
    }
    MutexLock lock(mu_);
    actor->info.set_pid(*pid);
    return;
  }
  node->channel->Call(
      proto::START_WORKER, start, [this, actor, node](Status s, std::string_view payload) {
        proto::StartWorkerReply reply;
        if (s.ok() && !reply.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
          s = Status::Internal("malformed StartWorkerReply");
        }
        if (!s.ok()) {
          MarkDead(actor, "the actor's worker could not be started on " +
                              NodeName(node->view, node->ip) + ": " + s.message());
          OnWorkerExit(actor->info.actor_id(), "never started");
          return;
        }
        MutexLock lock(mu_);
        actor->info.set_pid(reply.pid());
      });
}

void Head::StartTimers(const std::shared_ptr<Actor>& actor) {
  // The start timeout counts from creation, queued time included: a request
  // that never finds room fails instead of waiting forever.
  actor->start_timer = std::make_unique<asio::steady_timer>(loop_.context());
  actor->start_timer->expires_after(Config::Get().worker_start_timeout);
  const int incarnation = actor->info.num_restarts();
  actor->start_timer->async_wait([this, actor, incarnation](const asio::error_code& ec) {
    if (ec) return;
    bool pending;
    {
      MutexLock lock(mu_);
      pending = IsStarting(actor->info) && actor->info.num_restarts() == incarnation;
    }
    if (!pending) return;
    MarkDead(actor, "the actor's worker did not start within " +
                        std::to_string(Config::Get().worker_start_timeout.count() / 1000) +
                        " s (FERRY_WORKER_START_TIMEOUT_S)");
    StopWorker(actor);
  });
  actor->queued_timer = std::make_unique<asio::steady_timer>(loop_.context());
  actor->queued_timer->expires_after(Config::Get().pending_warning);
  actor->queued_timer->async_wait([this, actor](const asio::error_code& ec) {
    if (ec) return;
    MutexLock lock(mu_);
    if (actor->placed || actor->pooled || !IsStarting(actor->info)) return;
    FERRY_LOG(WARNING) << "actor " << actor->info.class_name() << " has waited "
                       << Config::Get().pending_warning.count() / 1000 << " s for "
                       << Describe(actor->request.to_place)
                       << " to be free on some node; it starts once other actors exit";
  });
}

void Head::PlaceQueued() {
  std::vector<std::shared_ptr<Actor>> launch;
  std::vector<std::pair<std::shared_ptr<Actor>, std::string>> fail;
  {
    MutexLock lock(mu_);
    std::vector<std::shared_ptr<Actor>> still;
    for (auto& actor : queued_) {
      if (actor->info.state() == proto::ActorInfo::DEAD) continue;
      Placement p = PlaceLocked(actor);
      if (p.decision == Placement::kPlaced) {
        actor->info.clear_pending_reason();
        launch.push_back(actor);
      } else if (p.decision == Placement::kInfeasible) {
        fail.emplace_back(actor, p.reason);
      } else {
        still.push_back(actor);
      }
    }
    queued_.swap(still);
  }
  for (auto& [actor, why] : fail) {
    MarkDead(actor, "the actor can no longer be placed: " + why);
    OnWorkerExit(actor->info.actor_id(), "never started");
  }
  for (auto& actor : launch) Launch(actor);
  ServeQueuedLeases();
}

void Head::OnWorkerExit(const std::string& actor_id, const std::string& description) {
  auto actor = Find(actor_id);
  if (!actor) return;
  std::vector<rpc::Responder> exit_waiters;
  bool restart;
  {
    MutexLock lock(mu_);
    if (actor->exited) return;
    actor->exited = true;
    ReleaseLocked(*actor);
    exit_waiters.swap(actor->exit_waiters);
    restart = MayRestartLocked(*actor);
  }
  if (actor->start_timer) actor->start_timer->cancel();
  if (restart) {
    Restart(actor, description);
  } else {
    MarkDead(actor, description + " unexpectedly");
  }
  for (auto& r : exit_waiters) r.Reply(proto::Empty());
  PlaceQueued();
}

bool Head::MayRestartLocked(const Actor& actor) const {
  // Only a running actor restarts (or one that ferry.kill(no_restart=False)
  // stopped): one whose (re-)construction failed or that died while
  // starting stays dead, so a constructor that always crashes cannot loop.
  const bool running = actor.info.state() == proto::ActorInfo::ALIVE ||
                       (actor.kill_restarts && IsStarting(actor.info));
  if (shut_down_ || actor.no_restart || !running) return false;
  const int max = actor.spec.options().max_restarts();
  return max < 0 || actor.info.num_restarts() < max;
}

void Head::Restart(const std::shared_ptr<Actor>& actor, const std::string& why) {
  std::vector<rpc::Responder> waiters;
  std::vector<ChannelPtr> subscribers;
  proto::ActorInfo info;
  Placement placement;
  {
    MutexLock lock(mu_);
    if (actor->info.state() == proto::ActorInfo::DEAD) return;
    actor->info.set_state(proto::ActorInfo::RESTARTING);
    actor->info.set_num_restarts(actor->info.num_restarts() + 1);
    actor->kill_restarts = false;
    *actor->info.mutable_death_cause() = Unavailable(why);
    actor->info.set_worker_id(WorkerId::Random().Binary());
    actor->info.clear_address();
    actor->info.clear_pid();
    actor->info.clear_host();
    actor->launched = false;
    actor->exited = false;
    placement = PlaceLocked(actor);
    if (placement.decision == Placement::kWait) {
      actor->info.set_pending_reason(placement.reason);
      queued_.push_back(actor);
    }
    waiters.swap(actor->change_waiters);
    for (auto& weak : actor->subscribers) {
      if (auto ch = weak.lock()) subscribers.push_back(std::move(ch));
    }
    info = actor->info;
  }
  FERRY_LOG(INFO) << "restarting actor " << info.class_name() << " (restart " << info.num_restarts()
                  << "): " << why;
  if (placement.decision == Placement::kInfeasible) {
    MarkDead(actor, why + "; it cannot be restarted: " + placement.reason);
    return;
  }
  for (auto& r : waiters) r.Reply(info);
  // ACTOR_DIED with state RESTARTING: callers close their connection to the
  // old process now, and reconnect once the new one is ready.
  for (auto& ch : subscribers) ch->Notify(proto::ACTOR_DIED, info);
  StartTimers(actor);
  if (placement.decision == Placement::kPlaced) Launch(actor);
}

void Head::MarkDead(const std::shared_ptr<Actor>& actor, const std::string& cause) {
  std::vector<rpc::Responder> waiters;
  std::vector<ChannelPtr> subscribers;
  proto::ActorInfo info;
  {
    MutexLock lock(mu_);
    if (actor->info.state() == proto::ActorInfo::DEAD) return;
    actor->info.set_state(proto::ActorInfo::DEAD);
    *actor->info.mutable_death_cause() = Unavailable(cause);
    waiters.swap(actor->settle_waiters);
    for (auto& r : actor->change_waiters) waiters.push_back(std::move(r));
    actor->change_waiters.clear();
    for (auto& weak : actor->subscribers) {
      if (auto ch = weak.lock()) subscribers.push_back(std::move(ch));
    }
    actor->subscribers.clear();
    info = actor->info;
  }
  for (auto& r : waiters) r.Reply(info);
  for (auto& ch : subscribers) ch->Notify(proto::ACTOR_DIED, info);
}

void Head::StopWorker(const std::shared_ptr<Actor>& actor) {
  std::shared_ptr<Node> node;
  bool running;
  {
    MutexLock lock(mu_);
    node = actor->node;
    running = actor->launched && !actor->exited;
  }
  if (!running || !node) return;
  if (node->is_local) {
    local_agent_.Stop(actor->info.actor_id());
    return;
  }
  proto::StopWorker stop;
  stop.set_actor_id(actor->info.actor_id());
  node->channel->Call(proto::STOP_WORKER, stop, [](Status, std::string_view) {});
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
    if (!IsStarting(actor->info) || req.worker_id() != actor->info.worker_id()) {
      lock.Unlock();
      responder.ReplyError(Status::FailedPrecondition("the actor is no longer starting"));
      return;
    }
    actor->info.set_address(req.address());
    actor->info.set_worker_id(req.worker_id());
    if (req.pid() > 0) actor->info.set_pid(req.pid());
    actor->info.set_host(req.host());
    *reply.mutable_actor() = actor->spec;
    reply.set_node_id(actor->info.node_id());
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
    if (IsStarting(actor->info)) {
      actor->info.set_state(proto::ActorInfo::ALIVE);
      waiters.swap(actor->settle_waiters);
    }
    info = actor->info;
  }
  for (auto& r : waiters) r.Reply(info);
  responder.Reply(proto::Empty());
}

void Head::HandleGetActorInfo(const ChannelPtr& channel, std::string_view payload,
                              rpc::Responder responder) {
  proto::GetActorInfo req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  std::shared_ptr<Actor> actor;
  proto::ActorInfo info;
  {
    MutexLock lock(mu_);
    std::string id = req.actor_id();
    if (id.empty()) {
      auto it = names_.find(req.name());
      if (it != names_.end()) id = it->second;
    }
    auto it = actors_.find(id);
    if (it != actors_.end()) actor = it->second;
    if (actor && actor->info.state() != proto::ActorInfo::DEAD && channel) {
      // Whoever looks an actor up hears of its death (ACTOR_DIED).
      bool known = false;
      for (auto& weak : actor->subscribers) known |= weak.lock() == channel;
      if (!known) actor->subscribers.push_back(channel);
    }
    if (actor && req.wait_until_settled() && IsStarting(actor->info)) {
      actor->settle_waiters.push_back(std::move(responder));
      return;
    }
    if (actor && req.wait_for_change() && actor->info.state() == proto::ActorInfo::ALIVE &&
        actor->info.num_restarts() == req.known_restarts()) {
      actor->change_waiters.push_back(std::move(responder));
      return;
    }
    if (actor) info = actor->info;
  }
  if (!actor) {
    responder.ReplyError(Status::NotFound(
        req.name().empty() ? "unknown actor" : "no actor named '" + req.name() + "'"));
    return;
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
  bool restart;
  {
    MutexLock lock(mu_);
    actor->no_restart = req.no_restart();
    actor->kill_restarts = !req.no_restart();
    restart = MayRestartLocked(*actor);
  }
  // Killed with no_restart=False, a restartable actor restarts when its
  // process has exited; otherwise it is dead now.
  if (!restart) MarkDead(actor, "the actor was killed by ferry.kill()");
  bool wait;
  {
    MutexLock lock(mu_);
    if (!restart) queued_.erase(std::remove(queued_.begin(), queued_.end(), actor), queued_.end());
    wait = actor->launched && !actor->exited && actor->node && actor->node->view.alive;
    if (wait) actor->exit_waiters.push_back(std::move(responder));
  }
  if (wait) {
    StopWorker(actor);  // the exit report answers the responder
  } else {
    responder.Reply(proto::Empty());
  }
}

}  // namespace ferry::cluster
