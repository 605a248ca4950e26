// TaskSubmitter: runs remote-function tasks on workers the Head lends.
//
// Submit(): once every top-level argument of the task is ready (so a task
// never holds resources while it waits for another one; an argument that
// is an error fails the task at once), the task joins the ready queue of
// its shape (its LeaseWorker request: resources, strategy, worker command)
// and a lease is asked of the Head (LEASE_WORKER) for it (at most
// kMaxLeaseRequests in flight per shape). A granted lease
// runs the oldest ready task of its shape on the lent worker (a call to it,
// through `push`); when that task's reply comes, the same worker runs the
// next ready task of the shape under the same lease, and the lease goes back
// (RETURN_WORKER) only when none is left. So a burst of like tasks costs
// one lease per worker, not one per task, as with Ray's lease reuse. A
// lease granted when no task of its shape waits any more is returned at
// once.
//
// Retries: a task whose worker died (an Unavailable error: the process
// ended under it) or that raised an exception its caller asked to retry is
// queued again while max_retries allows (-1: always); the lease of a worker
// that died is returned as failed, so it is never lent again.
//
// The ports are CoreWorker's: the dependency wait (ObjectResolver), the
// Head channel and the actor-call path (ActorSubmitter), so this logic is
// unit-tested with fakes (task_submitter_test.cc).
//
// Thread contract: thread-safe; nothing here blocks, and no port is called
// under the lock. Callbacks of the ports may run on any thread, and `done`
// runs on whichever finished the task.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ferry/common/id.h"
#include "ferry/common/status.h"
#include "ferry/common/thread_annotations.h"
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

  // `spec` has every field but the worker's (actor_id, lease_id) and the
  // dependency arguments, which `push` fills in per attempt.
  void Submit(proto::TaskSpec spec, std::vector<ObjectRef> deps, proto::LeaseWorker lease,
              DoneFn done);

  // Leases asked of the Head and not granted yet, over every shape.
  size_t NumLeaseRequests() FERRY_EXCLUDES(mu_);

 private:
  struct Task;
  struct Lease {
    std::string id;
    ActorId worker;
  };
  struct Shape {
    proto::LeaseWorker request;
    std::deque<std::shared_ptr<Task>> ready;  // arguments ready, waiting for a worker
    size_t requested = 0;                     // leases asked for, not granted yet
  };

  // Lease requests in flight per shape, at most (Ray bounds them too): more
  // workers join a burst at this many per round trip to the Head.
  static constexpr size_t kMaxLeaseRequests = 10;

  // Queues `task` on its shape and asks for a lease if the ones in flight
  // do not cover the queue.
  void Enqueue(const std::shared_ptr<Task>& task) FERRY_EXCLUDES(mu_);
  // Whether `shape` needs one more lease request; counts it if so.
  bool WantsLeaseLocked(Shape& shape) FERRY_REQUIRES(mu_);
  void RequestLease(const std::string& shape, const proto::LeaseWorker& request);
  void OnLease(const std::string& shape, StatusOr<proto::LeaseWorkerReply> granted)
      FERRY_EXCLUDES(mu_);
  // Runs the next ready task of `shape` on `lease`'s worker, or returns the
  // lease when none is left.
  void RunNext(const std::string& shape, const Lease& lease) FERRY_EXCLUDES(mu_);
  void Run(const std::string& shape, const Lease& lease, const std::shared_ptr<Task>& task);
  void OnReply(const std::string& shape, const Lease& lease, const std::shared_ptr<Task>& task,
               proto::PushTaskReply reply);
  void GiveBack(const Lease& lease, bool worker_failed);
  static proto::PushTaskReply ErrorReply(const proto::TaskSpec& spec,
                                         const proto::ObjectValueProto& error);

  const Ports ports_;
  Mutex mu_;
  std::map<std::string, Shape> shapes_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::core
