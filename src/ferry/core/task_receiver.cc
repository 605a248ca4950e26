#include "ferry/core/task_receiver.h"

#include "ferry/common/fault.h"
#include "ferry/common/logging.h"
#include "ferry/common/spin_wait.h"
#include "ferry/core/error_value.h"

namespace ferry::core {

void TaskReceiver::Submit(proto::TaskSpec spec, ReplyFn reply) {
  auto task = std::make_shared<Task>();
  task->spec = std::move(spec);
  task->reply = std::move(reply);
  task->timeline = timeline_;
  if (timeline_ != nullptr && timeline_->enabled()) {
    task->timed = true;
    task->span.arrived_us = Timeline::NowMicros();
  }
  const int n = task->spec.args_size();
  task->args.resize(n);
  task->tensors.resize(n);
  for (int i = 0; i < n; ++i) {
    const proto::TaskArg& arg = task->spec.args(i);
    if (arg.has_ref() || arg.value().has_rdt()) {
      task->unresolved++;
    } else {
      task->args[i] = std::make_shared<const proto::ObjectValueProto>(arg.value());
    }
  }
  {
    MutexLock lock(mu_);
    if (stopped_) {
      lock.Unlock();
      task->reply(ErrorReply(task->spec, MakeErrorValue(Status::Unavailable(
                                             "the actor is shutting down; the task was not run"))));
      return;
    }
    CallerQueue& queue = callers_[task->spec.caller_id()];
    if (task->spec.sequence_number() < queue.next_seq ||
        queue.waiting.count(task->spec.sequence_number()) != 0) {
      FERRY_LOG(ERROR) << "duplicate task sequence number " << task->spec.sequence_number();
    }
    queue.waiting[task->spec.sequence_number()] = task;
    if (task->unresolved == 0) {
      task->resolved = true;
      task->span.resolved_us = task->span.arrived_us;
      DispatchLocked(queue);
    }
  }
  if (task->unresolved == 0) {
    cv_.notify_one();
    return;
  }
  // Resolve outside the lock: the resolver may answer synchronously.
  for (int i = 0; i < n; ++i) {
    const proto::TaskArg& arg = task->spec.args(i);
    if (arg.has_ref()) {
      resolver_->Resolve(arg.ref(), [this, task, i](ValuePtr value) {
        OnArgValue(task, static_cast<size_t>(i), std::move(value));
      });
    } else if (arg.value().has_rdt()) {
      OnArgValue(task, static_cast<size_t>(i),
                 std::make_shared<const proto::ObjectValueProto>(arg.value()));
    }
  }
}

void TaskReceiver::OnArgValue(const std::shared_ptr<Task>& task, size_t index, ValuePtr value) {
  if (!value->has_rdt() || !ValueStatus(*value).ok()) {
    OnArgResolved(task, index, std::move(value));
    return;
  }
  resolver_->ResolveTensors(
      task->spec.args(static_cast<int>(index)), value,
      [this, task, index, value](StatusOr<std::vector<tensor::Tensor>> tensors) {
        if (!tensors.ok()) {
          OnArgResolved(task, index,
                        std::make_shared<const proto::ObjectValueProto>(MakeErrorValue(
                            tensors.status().WithContext("receiving the tensors of an argument"))));
          return;
        }
        {
          MutexLock lock(mu_);
          task->tensors[index] = std::move(tensors).value();
        }
        OnArgResolved(task, index, value);
      });
}

void TaskReceiver::OnArgResolved(const std::shared_ptr<Task>& task, size_t index, ValuePtr value) {
  {
    MutexLock lock(mu_);
    task->args[index] = std::move(value);
    if (--task->unresolved != 0) return;
    task->resolved = true;
    if (task->timed) task->span.resolved_us = Timeline::NowMicros();
    auto it = callers_.find(task->spec.caller_id());
    if (it == callers_.end()) return;  // stopped
    DispatchLocked(it->second);
  }
  cv_.notify_all();
}

void TaskReceiver::DispatchLocked(CallerQueue& queue) {
  while (!queue.waiting.empty()) {
    auto it = queue.waiting.begin();
    if (it->first != queue.next_seq || !it->second->resolved) return;
    ready_.push_back(std::move(it->second));
    num_ready_.store(ready_.size(), std::memory_order_release);
    queue.waiting.erase(it);
    queue.next_seq++;
  }
}

void TaskReceiver::RunExecutor(TaskExecutor* executor) {
  for (;;) {
    std::shared_ptr<Task> task;
    // Back-to-back calls usually arrive within microseconds: poll before
    // sleeping (see spin_wait.h).
    SpinUntil([&] {
      return num_ready_.load(std::memory_order_acquire) > 0 ||
             stopped_flag_.load(std::memory_order_acquire);
    });
    {
      MutexLock lock(mu_);
      cv_.wait(lock.native(), [&]() FERRY_REQUIRES(mu_) { return stopped_ || !ready_.empty(); });
      if (ready_.empty()) return;  // stopped
      task = std::move(ready_.front());
      ready_.pop_front();
      num_ready_.store(ready_.size(), std::memory_order_release);
    }
    Execute(executor, task);
  }
}

namespace {
thread_local std::string current_lease;
}  // namespace

const std::string& TaskReceiver::CurrentLease() { return current_lease; }

void TaskReceiver::Execute(TaskExecutor* executor, const std::shared_ptr<Task>& task) {
  if (task->timed) task->span.started_us = Timeline::NowMicros();
  // An argument that holds a failure fails the task without running it, so
  // the producer's error reaches every consumer.
  for (const ValuePtr& arg : task->args) {
    if (!ValueStatus(*arg).ok()) return Reply(*task, ErrorReply(task->spec, *arg));
  }
  std::vector<ExecArg> opened;
  opened.reserve(task->args.size());
  for (size_t i = 0; i < task->args.size(); ++i) {
    auto readable = object::ReadableValue::Open(std::move(task->args[i]));
    if (!readable.ok()) {
      return Reply(*task, ErrorReply(task->spec,
                                     MakeErrorValue(readable.status().WithContext(
                                         "could not read an argument of " + task->spec.method()))));
    }
    opened.push_back(ExecArg{std::move(readable).value(), std::move(task->tensors[i])});
  }
  task->args.clear();
  task->tensors.clear();
  current_lease = task->spec.lease_id();  // a synchronous executor runs the task inside
  executor->ExecuteAsync(task->spec, std::move(opened),
                         [task](std::vector<proto::ObjectValueProto> returns) {
                           proto::PushTaskReply reply;
                           for (auto& v : returns) *reply.add_returns() = std::move(v);
                           Reply(*task, std::move(reply));
                         });
  current_lease.clear();
}

void TaskReceiver::Reply(Task& task, proto::PushTaskReply reply) {
  if (Status fault = task.spec.is_creation() ? Status::Ok() : InjectFault("task.return");
      !fault.ok()) {
    reply = ErrorReply(task.spec, MakeErrorValue(fault));
  }
  if (task.timeline != nullptr) Record(task, reply);
  task.reply(std::move(reply));
}

void TaskReceiver::Record(Task& task, const proto::PushTaskReply& reply) {
  bool failed = false;
  for (const auto& value : reply.returns()) failed = failed || value.has_error();
  task.timeline->CountTask(failed);
  if (!task.timed) return;
  TaskSpan& span = task.span;
  span.finished_us = Timeline::NowMicros();
  if (span.started_us == 0) span.started_us = span.finished_us;  // failed before it ran
  auto id = TaskId::FromBinary(task.spec.task_id());
  if (id.ok()) span.task_id = *id;
  span.method = task.spec.is_creation() ? "__init__" : task.spec.method();
  auto caller = WorkerId::FromBinary(task.spec.caller_id());
  if (caller.ok()) span.caller = *caller;
  if (task.spec.return_ids_size() > 0) {
    auto first = ObjectId::FromBinary(task.spec.return_ids(0));
    if (first.ok()) span.first_return = *first;
  }
  task.timeline->AddTask(std::move(span));
}

proto::PushTaskReply TaskReceiver::ErrorReply(const proto::TaskSpec& spec,
                                              const proto::ObjectValueProto& error) {
  proto::PushTaskReply reply;
  int n = spec.is_creation() ? 1 : spec.return_ids_size();
  for (int i = 0; i < n; ++i) *reply.add_returns() = error;
  return reply;
}

void TaskReceiver::Stop() {
  std::vector<std::shared_ptr<Task>> dropped;
  {
    MutexLock lock(mu_);
    stopped_ = true;
    stopped_flag_.store(true, std::memory_order_release);
    for (auto& [caller, queue] : callers_) {
      for (auto& [seq, task] : queue.waiting) dropped.push_back(std::move(task));
    }
    callers_.clear();
    for (auto& task : ready_) dropped.push_back(std::move(task));
    ready_.clear();
    num_ready_.store(0, std::memory_order_release);
  }
  cv_.notify_all();
  auto error = MakeErrorValue(Status::Unavailable("the actor stopped before running this task"));
  for (auto& task : dropped) task->reply(ErrorReply(task->spec, error));
}

size_t TaskReceiver::NumQueued() {
  MutexLock lock(mu_);
  size_t n = ready_.size();
  for (auto& [caller, queue] : callers_) n += queue.waiting.size();
  return n;
}

}  // namespace ferry::core
