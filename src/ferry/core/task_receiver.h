// TaskReceiver: the worker side of actor tasks — ordering, argument
// resolution and the executor threads.
//
// A task arrives (io thread), its ObjectRef arguments are resolved
// asynchronously through an ArgumentResolver, and it becomes runnable once
// resolved AND every earlier task from the same caller (by sequence number)
// has been dispatched. Tasks from different callers never wait on each
// other's arguments, so a task whose argument is produced by a later task of
// another caller cannot deadlock the actor. Runnable tasks go to a FIFO that
// `max_concurrency` executor threads drain; with one thread, tasks of one
// caller run in submission order.
//
// Thread contract: thread-safe. Submit() from any thread (normally the io
// thread); RunExecutor() blocks the calling thread as one executor until
// Stop(). Reply callbacks run on executor threads (or, for an asynchronous
// executor, on the thread that finished the task), outside any lock.
//
//   TaskReceiver r(&resolver);
//   r.Submit(spec, [](proto::PushTaskReply reply) { responder.Reply(reply); });
//   std::thread t([&] { r.RunExecutor(&executor); });
//   ...; r.Stop(); t.join();
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "ferry/common/thread_annotations.h"
#include "ferry/core/argument_resolver.h"
#include "ferry/core/task_executor.h"
#include "ferry/core/timeline.h"

namespace ferry::core {

class TaskReceiver {
 public:
  using ReplyFn = std::function<void(proto::PushTaskReply)>;

  // `timeline` (may be null) counts the tasks and records their phases.
  explicit TaskReceiver(ArgumentResolver* resolver, Timeline* timeline = nullptr)
      : resolver_(resolver), timeline_(timeline) {}
  TaskReceiver(const TaskReceiver&) = delete;
  TaskReceiver& operator=(const TaskReceiver&) = delete;

  // Queues `spec`; `reply` fires exactly once with its results (also after
  // Stop(), with an error value per return).
  void Submit(proto::TaskSpec spec, ReplyFn reply);

  // Runs tasks until Stop(). Call from each executor thread.
  void RunExecutor(TaskExecutor* executor);

  // Wakes every executor; queued tasks are answered with an error.
  void Stop();

  size_t NumQueued();

  // The lease of the remote-function task this thread is running ("" when
  // none: an actor method, or not an executor thread).
  static const std::string& CurrentLease();

 private:
  struct Task {
    proto::TaskSpec spec;
    ReplyFn reply;
    std::vector<ValuePtr> args;
    std::vector<std::vector<tensor::Tensor>> tensors;  // per arg, RDT only
    size_t unresolved = 0;
    bool resolved = false;
    Timeline* timeline = nullptr;  // counts it; records `span` when enabled
    bool timed = false;            // the span's times are being taken
    TaskSpan span;
  };
  struct CallerQueue {
    uint64_t next_seq = 0;
    std::map<uint64_t, std::shared_ptr<Task>> waiting;
  };

  void OnArgResolved(const std::shared_ptr<Task>& task, size_t index, ValuePtr value);
  // Value known; fetches its tensors first if it is an RDT object.
  void OnArgValue(const std::shared_ptr<Task>& task, size_t index, ValuePtr value);
  // Moves every dispatchable task of `caller` to ready_.
  void DispatchLocked(CallerQueue& queue) FERRY_REQUIRES(mu_);
  // Runs `task` and replies to it, now or when an asynchronous executor
  // finishes it.
  static void Execute(TaskExecutor* executor, const std::shared_ptr<Task>& task);
  static void Reply(Task& task, proto::PushTaskReply reply);
  // Counts the task and, when timed, adds its completed span.
  static void Record(Task& task, const proto::PushTaskReply& reply);
  static proto::PushTaskReply ErrorReply(const proto::TaskSpec& spec,
                                         const proto::ObjectValueProto& error);

  ArgumentResolver* const resolver_;
  Timeline* const timeline_;  // may be null

  Mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, CallerQueue> callers_ FERRY_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Task>> ready_ FERRY_GUARDED_BY(mu_);
  bool stopped_ FERRY_GUARDED_BY(mu_) = false;
  // Lock-free mirrors of ready_.size() and stopped_ for the executors' spin.
  std::atomic<size_t> num_ready_{0};
  std::atomic<bool> stopped_flag_{false};
};

}  // namespace ferry::core
