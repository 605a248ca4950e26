// NodeAgent: the worker processes of one node — starts each actor's worker,
// watches it exit, stops it on request, and leaves none behind.
//
// The Head drives it: in-process for the node the Head runs on (the embedded
// default, and the head host of a cluster), and through NodeAgentService's
// START_WORKER / STOP_WORKER messages on every other node. Workers are
// children of this process and exit with it (ProcessSpawner's liveness pipe),
// so a node agent killed with SIGKILL takes its workers along.
//
// Lifecycle: construct on a started IoLoop; Start() / Stop() any time;
// Shutdown() (idempotent, run by the destructor) kills and reaps every
// worker; `on_exit` never fires after it returns.
//
// Output: each worker's stdout and stderr go to a WorkerOutput (log files
// under `log_dir`, lines to `on_output`, the last lines kept). A worker that
// exits without being stopped has its last lines in the exit description.
//
// Thread contract: thread-safe. `on_exit(actor_id, description)` runs on the
// io thread, once per started worker, outside the agent's lock; so does
// `on_output`.
//
//   NodeAgent agent(loop, [](const std::string& actor, const std::string& why) { ... });
//   FERRY_ASSIGN_OR_RETURN(int pid, agent.Start(request));
//   agent.Stop(request.actor_id());   // on_exit fires once it is reaped
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ferry/cluster/process_spawner.h"
#include "ferry/cluster/worker_output.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/io_loop.h"

namespace ferry::cluster {

struct NodeAgentOutput {
  // Where the workers' log files go; empty: none.
  std::string log_dir;
  // This node's address, carried by its output ("" on the Head's own host).
  std::string node_ip;
  // Receives each batch of lines (actor_id, pid, name, node_ip, stream,
  // lines); empty: the output is only kept in the files.
  std::function<void(proto::WorkerOutput)> on_output;
};

class NodeAgent {
 public:
  using ExitCallback =
      std::function<void(const std::string& actor_id, const std::string& description)>;

  NodeAgent(rpc::IoLoop& loop, ExitCallback on_exit, NodeAgentOutput output = {});
  ~NodeAgent();
  NodeAgent(const NodeAgent&) = delete;
  NodeAgent& operator=(const NodeAgent&) = delete;

  // Spawns the worker with this process's environment plus request.env().
  // Returns its pid. Unavailable after Shutdown().
  StatusOr<int> Start(const proto::StartWorker& request);
  // SIGKILLs the actor's worker if it runs; on_exit reports the exit.
  void Stop(const std::string& actor_id);
  // Kills every worker and waits until each is reaped. Idempotent.
  void Shutdown();

  size_t NumLiveWorkers();
  std::vector<int> WorkerPids();

 private:
  struct Worker;
  void OnExit(const std::shared_ptr<Worker>& worker);
  // Delivers what the (reaped) workers printed last and closes their pipes.
  void FinishOutputs(std::vector<std::shared_ptr<Worker>> workers);

  rpc::IoLoop& loop_;
  const ExitCallback on_exit_;
  const NodeAgentOutput output_;
  ProcessSpawner spawner_;

  Mutex mu_;
  std::map<std::string, std::shared_ptr<Worker>> workers_ FERRY_GUARDED_BY(mu_);
  bool shut_down_ FERRY_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::cluster
