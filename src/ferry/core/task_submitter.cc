#include "ferry/core/task_submitter.h"

#include "ferry/core/error_value.h"

namespace ferry::core {

struct TaskSubmitter::Task {
  proto::TaskSpec spec;
  std::vector<ObjectRef> deps;
  proto::LeaseWorker lease;
  DoneFn done;
};

void TaskSubmitter::Submit(proto::TaskSpec spec, std::vector<ObjectRef> deps,
                           proto::LeaseWorker lease, DoneFn done) {
  auto task = std::make_shared<Task>(
      Task{std::move(spec), std::move(deps), std::move(lease), std::move(done)});
  if (task->deps.empty()) {
    Lease(task);
    return;
  }
  ports_.await_deps(task->deps, [this, task](ValuePtr error) {
    if (error) {
      task->done(ActorId(), ErrorReply(task->spec, *error));
      return;
    }
    Lease(task);
  });
}

void TaskSubmitter::Lease(const std::shared_ptr<Task>& task) {
  ports_.lease(task->lease, [this, task](StatusOr<proto::LeaseWorkerReply> granted) {
    if (!granted.ok()) {
      task->done(ActorId(), ErrorReply(task->spec, MakeErrorValue(granted.status())));
      return;
    }
    auto worker = ActorId::FromBinary(granted->actor_id());
    if (!worker.ok()) {
      task->done(ActorId(), ErrorReply(task->spec, MakeErrorValue(worker.status())));
      return;
    }
    proto::TaskSpec attempt = task->spec;
    attempt.set_actor_id(granted->actor_id());
    std::string lease_id = granted->lease_id();
    ports_.push(*worker, std::move(attempt), task->deps,
                [this, task, worker = *worker, lease_id](proto::PushTaskReply reply) {
                  OnReply(task, worker, lease_id, std::move(reply));
                });
  });
}

void TaskSubmitter::OnReply(const std::shared_ptr<Task>& task, const ActorId& worker,
                            const std::string& lease_id, proto::PushTaskReply reply) {
  Status status = reply.returns_size() > 0 ? ValueStatus(reply.returns(0)) : Status::Ok();
  const bool worker_died = status.code() == StatusCode::kUnavailable;
  const bool retryable = reply.returns_size() > 0 && reply.returns(0).retryable();
  proto::ReturnWorker give_back;
  give_back.set_lease_id(lease_id);
  give_back.set_worker_failed(worker_died);
  ports_.give_back(give_back);
  const int max = task->spec.max_retries();
  const bool may_retry = max < 0 || task->spec.attempt() < max;
  if ((worker_died || retryable) && may_retry) {
    task->spec.set_attempt(task->spec.attempt() + 1);
    Lease(task);
    return;
  }
  if (worker_died) {
    reply = ErrorReply(task->spec, MakeErrorValue(Status::Unavailable(
                                       "the worker process running task " + task->spec.method() +
                                       " died (attempts: " +
                                       std::to_string(task->spec.attempt() + 1) +
                                       "): " + status.message())));
  }
  task->done(worker, std::move(reply));
}

proto::PushTaskReply TaskSubmitter::ErrorReply(const proto::TaskSpec& spec,
                                               const proto::ObjectValueProto& error) {
  proto::PushTaskReply reply;
  for (int i = 0; i < std::max(1, spec.return_ids_size()); ++i) *reply.add_returns() = error;
  return reply;
}

}  // namespace ferry::core
