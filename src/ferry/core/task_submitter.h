// TaskSubmitter: runs remote-function tasks on workers the Head lends.
//
// Submit(): once every top-level argument of the task is ready (so a task
// never holds resources while it waits for another one; an argument that
// is an error fails the task at once), asks the Head for
// a worker with the task's resources (LEASE_WORKER), sends the task to it as
// a call to that worker, and returns the lease (RETURN_WORKER) when the
// reply comes. A task whose worker died (an Unavailable error: the process
// ended under it) or that raised an exception its caller asked to retry is
// sent again, with a fresh lease, while max_retries allows (-1: always);
// the lease of a worker that died is returned as failed, so it is never
// lent again.
//
// The ports are CoreWorker's: the dependency wait (ObjectResolver), the
// Head channel and the actor-call path (ActorSubmitter), so this logic is
// unit-tested with fakes (task_submitter_test.cc).
//
// Thread contract: thread-safe; nothing here blocks. Callbacks of the ports
// may run on any thread, and `done` runs on whichever finished the task.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "ferry/common/id.h"
#include "ferry/common/status.h"
#include "ferry/core/argument_resolver.h"
#include "ferry/core/object_ref.h"
#include "ferry/proto/ferry.pb.h"

namespace ferry::core {

class TaskSubmitter {
 public:
  using LeaseReplyFn = std::function<void(StatusOr<proto::LeaseWorkerReply>)>;
  using ReplyFn = std::function<void(proto::PushTaskReply)>;
  // The worker that ran the final attempt (nil if none ran) and its reply.
  using DoneFn = std::function<void(const ActorId& worker, proto::PushTaskReply)>;

  struct Ports {
    // Calls `ready` once every ref in `deps` is ready, with the first one
    // whose value is an error (nullptr when none is): the task then fails
    // with it, without running, as a worker would fail it.
    std::function<void(const std::vector<ObjectRef>& deps, std::function<void(ValuePtr)> ready)>
        await_deps;
    std::function<void(const proto::LeaseWorker& request, LeaseReplyFn reply)> lease;
    std::function<void(const proto::ReturnWorker& request)> give_back;
    // Sends `spec` to `worker`, with an argument for each of `deps` added.
    std::function<void(const ActorId& worker, proto::TaskSpec spec,
                       const std::vector<ObjectRef>& deps, ReplyFn reply)>
        push;
  };

  explicit TaskSubmitter(Ports ports) : ports_(std::move(ports)) {}

  // `spec` has every field but the worker's (actor_id) and the dependency
  // arguments, which `push` fills in per attempt.
  void Submit(proto::TaskSpec spec, std::vector<ObjectRef> deps, proto::LeaseWorker lease,
              DoneFn done);

 private:
  struct Task;
  void Lease(const std::shared_ptr<Task>& task);
  void OnReply(const std::shared_ptr<Task>& task, const ActorId& worker,
               const std::string& lease_id, proto::PushTaskReply reply);
  static proto::PushTaskReply ErrorReply(const proto::TaskSpec& spec,
                                         const proto::ObjectValueProto& error);

  const Ports ports_;
};

}  // namespace ferry::core
