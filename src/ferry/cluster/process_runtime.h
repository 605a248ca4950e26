// How a process becomes part of ferry, the same for every language binding.
//
// StartDriverRuntime(): with no address, a CoreWorker plus the embedded Head
// serving on its socket, with a fresh session name and cluster token; with a
// Head's address (cluster mode), a CoreWorker that also listens on TCP at
// this host's node IP and registers with that Head as a driver (its actors
// end when it disconnects). StartWorkerRuntime():
// in a process the Head spawned, the worker guards (exit with the driver)
// and a CoreWorker configured from the environment the Head passed
// (FERRY_HEAD_ADDRESS, FERRY_TOKEN, FERRY_SESSION, FERRY_WORKER_ID,
// FERRY_ACTOR_ID). Thread contract: call once per process, from one thread;
// DriverRuntime::Shutdown is idempotent.
//
//   FERRY_ASSIGN_OR_RETURN(DriverRuntime rt, StartDriverRuntime());
//   ... rt.core->CreateActor(...) ...
//   rt.Shutdown();
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "ferry/cluster/head.h"
#include "ferry/cluster/placement.h"
#include "ferry/core/core_worker.h"

namespace ferry::cluster {

struct DriverOptions {
  // Empty: the embedded single-host runtime. Else the Head, "IP:PORT".
  std::string address;
  // Cluster mode: the cluster's token.
  std::string token;
  // Cluster mode: where this driver listens for other hosts. Empty: the
  // local address of the route to the Head.
  std::string node_ip;
  // Embedded mode: this host's resources (default: CPU = the CPU count).
  ResourceMap resources;
};

struct DriverRuntime {
  std::shared_ptr<core::CoreWorker> core;
  std::unique_ptr<Head> head;  // embedded mode
  // Cluster mode: the registration with the Head, on a loop of its own.
  std::unique_ptr<rpc::IoLoop> link_loop;
  std::shared_ptr<rpc::Channel> link;
  NodeId node_id;
  // Embedded mode: (temp dir, session) of the session file written for the
  // `ferry` command (session_file.h); removed by Shutdown.
  std::pair<std::string, std::string> session_file;

  // The cluster's nodes, from the embedded Head or over the link.
  StatusOr<std::vector<proto::NodeInfo>> Nodes();
  // Kills every worker (embedded) or ends this driver's registration
  // (cluster: the Head then kills its actors), then stops the CoreWorker.
  // Safe to call twice.
  void Shutdown();
};

StatusOr<DriverRuntime> StartDriverRuntime(const DriverOptions& options = {});

// True when this process was started by a Head (FERRY_HEAD_ADDRESS is set).
bool IsSpawnedWorker();
StatusOr<std::shared_ptr<core::CoreWorker>> StartWorkerRuntime();

}  // namespace ferry::cluster
