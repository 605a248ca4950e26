// How a process becomes part of ferry, the same for every language binding.
//
// StartDriverRuntime(): a CoreWorker plus the embedded Head serving on its
// socket, with a fresh session name and cluster token. StartWorkerRuntime():
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

#include "ferry/cluster/head.h"
#include "ferry/core/core_worker.h"

namespace ferry::cluster {

struct DriverRuntime {
  std::shared_ptr<core::CoreWorker> core;
  std::unique_ptr<Head> head;
  // Kills every worker, then stops the CoreWorker. Safe to call twice.
  void Shutdown();
};

StatusOr<DriverRuntime> StartDriverRuntime();

// True when this process was started by a Head (FERRY_HEAD_ADDRESS is set).
bool IsSpawnedWorker();
StatusOr<std::shared_ptr<core::CoreWorker>> StartWorkerRuntime();

}  // namespace ferry::cluster
