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
    placement = GrantLocked(*pending, &reply, &start);
    if (placement.decision == Placement::kWait) {
      pending->responder = std::move(responder);
      lease_queue_.push_back(pending);
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

std::shared_ptr<Head::Actor> Head::EndLeaseLocked(const Lease& lease, bool retire) {
  Node& node = *lease.node;
  if (node.view.alive) Add(node.view.available, lease.held);
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
    std::vector<std::shared_ptr<PendingLease>> still;
    for (auto& pending : lease_queue_) {
      proto::LeaseWorkerReply reply;
      std::shared_ptr<Actor> worker;
      Placement p = GrantLocked(*pending, &reply, &worker);
      if (worker) start.push_back(worker);
      if (p.decision == Placement::kPlaced) {
        granted.emplace_back(pending, std::move(reply));
      } else if (p.decision == Placement::kInfeasible) {
        failed.emplace_back(pending, p.reason);
      } else {
        still.push_back(pending);
      }
    }
    lease_queue_.swap(still);
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
    std::erase_if(lease_queue_, [holder](const auto& p) { return p->holder == holder; });
  }
  for (auto& worker : stop) StopWorker(worker);
  if (!stop.empty()) PlaceQueued();
}

}  // namespace ferry::cluster
