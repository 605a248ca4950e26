// The Head's pooled workers for remote-function tasks: LEASE_WORKER and
// RETURN_WORKER (see head.h, "Remote functions").
#include <algorithm>

#include "ferry/cluster/head.h"
#include "ferry/cluster/head_rows.h"
#include "ferry/common/logging.h"
#include "ferry/rpc/parse.h"

namespace ferry::cluster {

using namespace head_internal;  // NOLINT: the Head's own helpers

namespace {

// What pooled workers are called in the actor table (ferry list, logs).
constexpr char kPooledWorkerClass[] = "ferry-task-worker";

// Ray's default for a task: one CPU, held while it runs.
PlacementRequest TaskRequest(proto::ActorOptions options) {
  if (!options.has_num_cpus()) {
    options.set_num_cpus(1);
    options.set_has_num_cpus(true);
  }
  return RequestFor(options);
}

// Idle pooled workers a node keeps: one per CPU.
// Leases of one shape are placed alike: the key of their queue.
std::string ShapeKey(const PlacementRequest& request) {
  return Describe(request.to_place) + "|" + Describe(request.to_hold) + "|" +
         request.strategy.SerializeAsString();
}

size_t MaxIdle(const NodeView& node) {
  auto cpus = node.total.find(kCpu);
  return std::max<size_t>(1, cpus == node.total.end() ? 1 : static_cast<size_t>(cpus->second));
}

}  // namespace

void Head::HandleLeaseWorker(const ChannelPtr& channel, std::string_view payload,
                             rpc::Responder responder) {
  auto pending = std::make_shared<PendingLease>();
  if (!rpc::ParseRequest(payload, &pending->request, responder)) return;
  pending->placement = TaskRequest(pending->request.options());
  pending->holder = channel.get();
  proto::LeaseWorkerReply reply;
  std::shared_ptr<Actor> start;
  Placement placement;
  bool watch = false;
  {
    MutexLock lock(mu_);
    if (shut_down_) {
      lock.Unlock();
      responder.ReplyError(Status::Unavailable("ferry is shutting down"));
      return;
    }
    if (channel) watch = lease_holders_.emplace(channel.get(), true).second;
    // Behind the leases of its shape that wait already (first come, first
    // served), else placed now.
    auto waiting = lease_queues_.find(ShapeKey(pending->placement));
    if (waiting != lease_queues_.end()) {
      placement.decision = Placement::kWait;
    } else {
      placement = GrantLocked(*pending, &reply, &start);
    }
    if (placement.decision == Placement::kWait) {
      pending->responder = std::move(responder);
      lease_queues_[ShapeKey(pending->placement)].push_back(pending);
    }
  }
  if (watch) {
    const rpc::Channel* holder = channel.get();
    channel->AddCloseCallback([this, holder](Status) { OnLeaseHolderGone(holder); });
  }
  if (start) {
    StartTimers(start);
    Launch(start);
  }
  if (placement.decision == Placement::kPlaced) responder.Reply(reply);
  if (placement.decision == Placement::kInfeasible) {
    responder.ReplyError(Status::InvalidArgument("cannot run the task: " + placement.reason));
  }
}

Placement Head::GrantLocked(PendingLease& pending, proto::LeaseWorkerReply* reply,
                            std::shared_ptr<Actor>* start) {
  std::vector<NodeView> views;
  for (const auto& node : nodes_) views.push_back(node->view);
  Placement p = Place(views, pending.placement);
  if (p.decision != Placement::kPlaced) return p;
  std::shared_ptr<Node> node = nodes_[p.node_index];
  Subtract(node->view.available, pending.placement.to_hold);
  node->view.num_leases++;
  std::shared_ptr<Actor> worker;
  auto& idle = node->idle_workers;
  std::erase_if(idle, [](const auto& w) { return w->info.state() == proto::ActorInfo::DEAD; });
  const auto& command = pending.request.worker_command();
  auto match = std::find_if(idle.rbegin(), idle.rend(), [&](const auto& w) {
    const auto& theirs = w->spec.worker_command();
    return std::equal(theirs.begin(), theirs.end(), command.begin(), command.end());
  });
  if (match != idle.rend()) {
    worker = *match;
    idle.erase(std::next(match).base());
  }
  if (!worker) {
    worker = NewPooledWorkerLocked(node, pending.request);
    *start = worker;
  }
  auto lease = std::make_shared<Lease>();
  lease->id = ObjectId::Random().Binary();
  lease->node = node;
  lease->held = pending.placement.to_hold;
  lease->worker = worker;
  lease->holder = pending.holder;
  leases_[lease->id] = lease;
  reply->set_lease_id(lease->id);
  reply->set_actor_id(worker->info.actor_id());
  return p;
}

std::shared_ptr<Head::Actor> Head::NewPooledWorkerLocked(const std::shared_ptr<Node>& node,
                                                         const proto::LeaseWorker& request) {
  auto actor = std::make_shared<Actor>();
  const std::string id = ActorId::Random().Binary();
  actor->spec.set_actor_id(id);
  *actor->spec.mutable_worker_command() = request.worker_command();
  proto::ActorOptions* options = actor->spec.mutable_options();
  options->set_class_name(kPooledWorkerClass);
  options->set_max_concurrency(1);
  proto::TaskSpec* creation = actor->spec.mutable_creation_task();
  creation->set_task_id(TaskId::Random().Binary());
  creation->set_actor_id(id);
  creation->set_method("__init__");
  creation->set_is_creation(true);
  creation->set_language(request.language());
  creation->set_max_concurrency(1);
  actor->info.set_actor_id(id);
  actor->info.set_state(proto::ActorInfo::PENDING);
  actor->info.set_class_name(kPooledWorkerClass);
  actor->info.set_worker_id(WorkerId::Random().Binary());
  actor->info.set_node_id(node->view.id.Binary());
  actor->info.set_node_ip(node->ip);
  actor->node = node;  // holds nothing itself: its leases hold the resources
  actor->pooled = true;
  actors_[id] = actor;
  return actor;
}

void Head::HandleReturnWorker(std::string_view payload, rpc::Responder responder) {
  proto::ReturnWorker req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  std::shared_ptr<Actor> stop;
  {
    MutexLock lock(mu_);
    auto it = leases_.find(req.lease_id());
    if (it != leases_.end()) {
      std::shared_ptr<Lease> lease = std::move(it->second);
      leases_.erase(it);
      stop = EndLeaseLocked(*lease, req.worker_failed());
    }
  }
  responder.Reply(proto::Empty());
  if (stop) StopWorker(stop);
  PlaceQueued();
}

void Head::HandleLeaseBlocked(std::string_view payload) {
  proto::LeaseBlocked msg;
  if (!msg.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return;
  {
    MutexLock lock(mu_);
    auto it = leases_.find(msg.lease_id());
    if (it == leases_.end() || it->second->blocked == msg.blocked()) return;
    Lease& lease = *it->second;
    lease.blocked = msg.blocked();
    if (!lease.node->view.alive) return;
    if (lease.blocked) {
      Add(lease.node->view.available, lease.held);
    } else {
      Subtract(lease.node->view.available, lease.held);  // may oversubscribe for a while
      return;
    }
  }
  PlaceQueued();
}

std::shared_ptr<Head::Actor> Head::EndLeaseLocked(const Lease& lease, bool retire) {
  Node& node = *lease.node;
  node.view.num_leases--;
  if (node.view.alive && !lease.blocked) Add(node.view.available, lease.held);
  const std::shared_ptr<Actor>& worker = lease.worker;
  if (worker->info.state() == proto::ActorInfo::DEAD) return nullptr;
  if (!retire && node.view.alive && node.idle_workers.size() < MaxIdle(node.view)) {
    node.idle_workers.push_back(worker);
    return nullptr;
  }
  return worker;
}

void Head::ServeQueuedLeases() {
  std::vector<std::pair<std::shared_ptr<PendingLease>, proto::LeaseWorkerReply>> granted;
  std::vector<std::pair<std::shared_ptr<PendingLease>, std::string>> failed;
  std::vector<std::shared_ptr<Actor>> start;
  {
    MutexLock lock(mu_);
    for (auto it = lease_queues_.begin(); it != lease_queues_.end();) {
      auto& queue = it->second;
      while (!queue.empty()) {
        proto::LeaseWorkerReply reply;
        std::shared_ptr<Actor> worker;
        Placement p = GrantLocked(*queue.front(), &reply, &worker);
        if (p.decision == Placement::kWait) break;  // so do the rest of this shape
        if (worker) start.push_back(worker);
        if (p.decision == Placement::kPlaced) {
          granted.emplace_back(queue.front(), std::move(reply));
        } else {
          failed.emplace_back(queue.front(), p.reason);
        }
        queue.pop_front();
      }
      it = queue.empty() ? lease_queues_.erase(it) : std::next(it);
    }
  }
  for (auto& worker : start) {
    StartTimers(worker);
    Launch(worker);
  }
  for (auto& [pending, reply] : granted) pending->responder.Reply(reply);
  for (auto& [pending, why] : failed) {
    pending->responder.ReplyError(Status::InvalidArgument("cannot run the task: " + why));
  }
}

void Head::OnLeaseHolderGone(const rpc::Channel* holder) {
  std::vector<std::shared_ptr<Actor>> stop;
  {
    MutexLock lock(mu_);
    lease_holders_.erase(holder);
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second->holder != holder) {
        ++it;
        continue;
      }
      // Its task may still run for a caller that is gone: retire the worker.
      if (auto worker = EndLeaseLocked(*it->second, /*retire=*/true)) stop.push_back(worker);
      it = leases_.erase(it);
    }
    for (auto it = lease_queues_.begin(); it != lease_queues_.end();) {
      std::erase_if(it->second, [holder](const auto& p) { return p->holder == holder; });
      it = it->second.empty() ? lease_queues_.erase(it) : std::next(it);
    }
  }
  for (auto& worker : stop) StopWorker(worker);
  if (!stop.empty()) PlaceQueued();
}

}  // namespace ferry::cluster
