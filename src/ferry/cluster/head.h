// Head: the cluster's control service — the actor directory (named actors
// included), the node table and placement, and the key-value table used for
// rendezvous. It is never on the data path nor on the call path.
//
// In the default embedded mode it lives inside the driver and serves on the
// driver's own socket (its handlers are registered on the driver
// CoreWorker's dispatcher); in a cluster it runs in the `ferry start --head`
// daemon. Callers reach it over the same protocol either way.
//
// Nodes: the node the Head runs on is always there; its workers start in an
// in-process NodeAgent. Other hosts' agents REGISTER_NODE over their channel
// and heartbeat; the Head starts workers there with START_WORKER. A node
// whose channel closes or whose heartbeats stop for FERRY_NODE_TIMEOUT_S is
// dead, and so is every actor on it.
//
// Actor lifecycle: CREATE_ACTOR places the actor (placement.h: at once, or
// queued until resources free up; a request no node could ever hold is
// refused with InvalidArgument), records it PENDING and starts its worker on
// the chosen node; the worker REGISTERs (getting its creation task), builds
// the actor and reports ACTOR_READY -> ALIVE (or DEAD with the constructor's
// error). The worker's exit, KILL_ACTOR, its node's death or a start timeout
// make it DEAD with a cause that callers turn into ActorDiedError; the Head
// tells every process that looked the actor up (ACTOR_DIED), so callers fail
// at once even when their connection to the actor cannot notice (a host cut
// off). A dead actor's resources return to its node.
//
// Restarts: when a running actor's process ends (exit, KILL_ACTOR with
// no_restart=false, its node's death) and its max_restarts is not spent, it
// goes RESTARTING instead: a new worker (new worker id, placed anew) runs the
// same creation task and reports ACTOR_READY -> ALIVE, num_restarts one
// higher. Subscribers hear ACTOR_DIED with state RESTARTING; a caller whose
// connection closed asks GET_ACTOR_INFO with wait_for_change to learn
// whether the actor restarts or is dead.
//
// Remote functions: LEASE_WORKER places a task's resources like an actor's
// and lends the caller a pooled worker on that node (an actor process with
// no class, kept between tasks and reused for any caller of the same worker
// command), starting one when none is idle; the lease waits in a queue
// while no node has room. RETURN_WORKER gives the resources back and the
// worker to the pool (at most as many idle workers per node as it has
// CPUs), or retires it. A holder whose connection closes loses its leases
// and their workers. While a lent task waits in get (LEASE_BLOCKED), its
// lease's resources are free for others, as in Ray.
//
// Worker output: every node's agent sends what its workers print
// (WORKER_OUTPUT; the Head's own node's directly); the Head passes an
// actor's lines to the driver that created it, and the lines of workers no
// driver created (pooled workers, actors made by actors) to every driver
// that asked for output, and in the embedded default to print_output.
//
// Thread contract: handlers run on the io thread; the tables are guarded by
// mu_ so Shutdown() and the accessors may be called from any thread.
// Responders and channels are always called outside the lock.
//
//   Head head(core.io_loop(), core.dispatcher(), {.token = token, .local_node = node});
//   FERRY_RETURN_IF_ERROR(core.Start());
//   head.SetAddress(core.address());
//   ...
//   head.Shutdown();  // kills and reaps every local worker
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/steady_timer.hpp>

#include "ferry/cluster/kv_store.h"
#include "ferry/cluster/node_agent.h"
#include "ferry/cluster/placement.h"
#include "ferry/common/clock.h"
#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/channel.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"

namespace ferry::cluster {

struct LocalNode {
  NodeId id = NodeId::Random();
  // Where this node's workers listen for other hosts; empty in the embedded
  // default (workers then listen on Unix sockets only).
  std::string ip;
  ResourceMap resources;  // "CPU", "GPU", custom
};

struct HeadOptions {
  std::string token;
  std::string session;
  LocalNode local_node;
  // Where the workers of the Head's own node write their log files; empty:
  // none.
  std::string log_dir;
  // The embedded driver's printer of its workers' output (io thread); empty:
  // the output goes only to drivers registered with log_to_driver.
  std::function<void(const proto::WorkerOutput&)> print_output;
  // The embedded driver the Head lives in (its worker id, binary); empty in
  // a `ferry start --head` daemon. LIST_PROCESSES names it.
  std::string driver_worker_id;
};

class Head {
 public:
  // Registers the Head's handlers on `dispatcher` (before it serves).
  Head(rpc::IoLoop& loop, rpc::Dispatcher& dispatcher, HeadOptions options);
  ~Head();
  Head(const Head&) = delete;
  Head& operator=(const Head&) = delete;

  // Where workers connect to the Head (an address list). Call once the
  // server listens, before the first CREATE_ACTOR.
  void SetAddress(const std::string& address);
  // SIGKILLs every local worker, waits until each is reaped, and tells
  // remote agents to stop theirs. Idempotent.
  void Shutdown();

  const NodeId& local_node_id() const { return options_.local_node.id; }
  size_t NumLiveWorkers();
  std::vector<int> WorkerPids();
  std::vector<proto::NodeInfo> Nodes();
  // Every actor, in no particular order (pooled workers have the class
  // "ferry-task-worker").
  std::vector<proto::ActorInfo> Actors();
  // The session's drivers and running workers with their addresses: whom
  // `ferry list objects` and `ferry memory` ask (GET_STATE).
  std::vector<proto::ProcessInfo> Processes();
  KvStore& kv() { return kv_; }

 private:
  struct Actor;
  struct Node;
  using ChannelPtr = std::shared_ptr<rpc::Channel>;

  void HandleCreateActor(const ChannelPtr& channel, std::string_view payload,
                         rpc::Responder responder);
  void HandleRegisterWorker(std::string_view payload, rpc::Responder responder);
  void HandleActorReady(std::string_view payload, rpc::Responder responder);
  void HandleGetActorInfo(const ChannelPtr& channel, std::string_view payload,
                          rpc::Responder responder);
  void HandleKillActor(std::string_view payload, rpc::Responder responder);
  void HandleKvPut(std::string_view payload, rpc::Responder responder);
  void HandleKvGet(std::string_view payload, rpc::Responder responder);
  void HandleKvDel(std::string_view payload, rpc::Responder responder);
  void HandleRegisterNode(const ChannelPtr& channel, std::string_view payload,
                          rpc::Responder responder);
  void HandleHeartbeat(std::string_view payload);
  void HandleWorkerExited(std::string_view payload);
  void HandleGetNodes(rpc::Responder responder);
  void HandleListActors(rpc::Responder responder);
  void HandleRegisterDriver(const ChannelPtr& channel, std::string_view payload,
                            rpc::Responder responder);
  // Remote-function tasks (head_leases.cc): pooled workers lent with the
  // task's resources held on their node.
  void HandleLeaseWorker(const ChannelPtr& channel, std::string_view payload,
                         rpc::Responder responder);
  void HandleReturnWorker(std::string_view payload, rpc::Responder responder);
  void HandleLeaseBlocked(std::string_view payload);
  // Worker output (head.cc): to the drivers that should print it.
  void RouteOutput(const proto::WorkerOutput& output);

  // Places every queued actor that now fits (in arrival order); fails those
  // that became infeasible (their node died). Then grants the queued leases
  // that fit.
  void PlaceQueued();
  struct Lease;
  struct PendingLease;
  // Places `pending` and lends it a worker (an idle pooled one of that node,
  // else a new one, returned in `*start` for the caller to launch).
  Placement GrantLocked(PendingLease& pending, proto::LeaseWorkerReply* reply,
                        std::shared_ptr<Actor>* start) FERRY_REQUIRES(mu_);
  std::shared_ptr<Actor> NewPooledWorkerLocked(const std::shared_ptr<Node>& node,
                                               const proto::LeaseWorker& request)
      FERRY_REQUIRES(mu_);
  void ServeQueuedLeases();
  // The holder's connection closed: its leases end and their workers stop.
  void OnLeaseHolderGone(const rpc::Channel* holder);
  // Ends `lease` (resources back); the worker is kept for reuse unless
  // `retire`. Returns a worker to stop, if any.
  std::shared_ptr<Actor> EndLeaseLocked(const Lease& lease, bool retire) FERRY_REQUIRES(mu_);
  // Chooses a node for `actor` and takes its resources. kPlaced: the caller
  // launches it; kWait: queued; kInfeasible: the caller fails it.
  Placement PlaceLocked(const std::shared_ptr<Actor>& actor) FERRY_REQUIRES(mu_);
  void Launch(const std::shared_ptr<Actor>& actor);
  void StartTimers(const std::shared_ptr<Actor>& actor);
  void OnWorkerExit(const std::string& actor_id, const std::string& description);
  void OnNodeLost(const NodeId& node, const std::string& why);
  void CheckHeartbeats();
  void OnDriverGone(const std::string& driver_worker_id);
  // Marks DEAD (first cause wins), answers settle waiters and tells
  // subscribers. Does not touch the worker process.
  void MarkDead(const std::shared_ptr<Actor>& actor, const std::string& cause);
  // Whether the actor, whose process just ended, is re-created (its
  // max_restarts not spent, not killed for good).
  bool MayRestartLocked(const Actor& actor) const FERRY_REQUIRES(mu_);
  // Re-creates the actor in a new process (RESTARTING until it is ready),
  // placed anew; callers are told (ACTOR_DIED with state RESTARTING).
  void Restart(const std::shared_ptr<Actor>& actor, const std::string& why);
  void StopWorker(const std::shared_ptr<Actor>& actor);
  void ReleaseLocked(Actor& actor) FERRY_REQUIRES(mu_);
  std::shared_ptr<Actor> Find(const std::string& actor_id);
  std::map<std::string, std::string> WorkerEnv(const Actor& actor, const Node& node)
      FERRY_REQUIRES(mu_);
  proto::NodeInfo InfoLocked(const Node& node) const FERRY_REQUIRES(mu_);

  rpc::IoLoop& loop_;
  const HeadOptions options_;
  KvStore kv_;
  NodeAgent local_agent_;  // thread-safe on its own
  std::unique_ptr<asio::steady_timer> heartbeat_check_;

  Mutex mu_;
  std::string address_ FERRY_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::shared_ptr<Actor>> actors_ FERRY_GUARDED_BY(mu_);
  std::map<std::string, std::string> names_ FERRY_GUARDED_BY(mu_);
  // Ordered by registration: DEFAULT placement packs onto the first.
  std::vector<std::shared_ptr<Node>> nodes_ FERRY_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Actor>> queued_ FERRY_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::shared_ptr<Lease>> leases_ FERRY_GUARDED_BY(mu_);
  // Leases waiting for room, in arrival order per shape (resources and
  // strategy): when one cannot be placed, neither can those behind it, so
  // a pass costs one placement per shape, not one per waiting task.
  std::map<std::string, std::deque<std::shared_ptr<PendingLease>>> lease_queues_
      FERRY_GUARDED_BY(mu_);
  // Connections holding or asking for leases, watched for their close.
  std::unordered_map<const rpc::Channel*, bool> lease_holders_ FERRY_GUARDED_BY(mu_);
  // The drivers connected over REGISTER_DRIVER, by worker id: their actors
  // end with them.
  std::map<std::string, proto::ProcessInfo> drivers_ FERRY_GUARDED_BY(mu_);
  // Those of them that print their workers' output, by worker id.
  std::map<std::string, std::weak_ptr<rpc::Channel>> output_drivers_ FERRY_GUARDED_BY(mu_);
  bool shut_down_ FERRY_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::cluster
