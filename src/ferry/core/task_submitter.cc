#include "ferry/core/task_submitter.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "ferry/core/error_value.h"

namespace ferry::core {
namespace {

// Equal requests, equal keys (maps serialized in a fixed order).
std::string ShapeKey(const proto::LeaseWorker& request) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    request.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace

struct TaskSubmitter::Task {
  proto::TaskSpec spec;
  std::vector<ObjectRef> deps;
  std::string shape;
  proto::LeaseWorker lease;
  DoneFn done;
};

void TaskSubmitter::Submit(proto::TaskSpec spec, std::vector<ObjectRef> deps,
                           proto::LeaseWorker lease, DoneFn done) {
  std::string shape = ShapeKey(lease);
  auto task = std::make_shared<Task>(
      Task{std::move(spec), std::move(deps), std::move(shape), std::move(lease), std::move(done)});
  if (task->deps.empty()) {
    Enqueue(task);
    return;
  }
  ports_.await_deps(task->deps, [this, task](ValuePtr error) {
    if (error) {
      task->done(ActorId(), ErrorReply(task->spec, *error));
      return;
    }
    Enqueue(task);
  });
}

size_t TaskSubmitter::NumLeaseRequests() {
  MutexLock lock(mu_);
  size_t n = 0;
  for (const auto& [key, shape] : shapes_) n += shape.requested;
  return n;
}

bool TaskSubmitter::WantsLeaseLocked(Shape& shape) {
  if (shape.requested >= shape.ready.size() || shape.requested >= kMaxLeaseRequests) return false;
  shape.requested++;
  return true;
}

void TaskSubmitter::RequestLease(const std::string& shape, const proto::LeaseWorker& request) {
  ports_.lease(request, [this, shape](StatusOr<proto::LeaseWorkerReply> granted) {
    OnLease(shape, std::move(granted));
  });
}

void TaskSubmitter::Enqueue(const std::shared_ptr<Task>& task) {
  proto::LeaseWorker request;
  {
    MutexLock lock(mu_);
    auto [it, fresh] = shapes_.try_emplace(task->shape);
    Shape& shape = it->second;
    if (fresh) shape.request = task->lease;
    shape.ready.push_back(task);
    if (!WantsLeaseLocked(shape)) return;
    request = shape.request;
  }
  RequestLease(task->shape, request);
}

void TaskSubmitter::OnLease(const std::string& shape, StatusOr<proto::LeaseWorkerReply> granted) {
  std::deque<std::shared_ptr<Task>> refused;
  {
    MutexLock lock(mu_);
    Shape& s = shapes_[shape];
    s.requested--;
    // The Head cannot lend a worker for this shape: its tasks fail.
    if (!granted.ok()) refused.swap(s.ready);
  }
  for (const auto& task : refused) {
    task->done(ActorId(), ErrorReply(task->spec, MakeErrorValue(granted.status())));
  }
  if (!granted.ok()) return;
  auto worker = ActorId::FromBinary(granted->actor_id());
  if (!worker.ok()) return;  // a malformed grant: its lease expires with this process
  RunNext(shape, Lease{granted->lease_id(), *worker});
  // More tasks than leases asked for: keep the requests in flight.
  proto::LeaseWorker request;
  {
    MutexLock lock(mu_);
    auto it = shapes_.find(shape);
    if (it == shapes_.end() || !WantsLeaseLocked(it->second)) return;
    request = it->second.request;
  }
  RequestLease(shape, request);
}

void TaskSubmitter::RunNext(const std::string& shape, const Lease& lease) {
  std::shared_ptr<Task> task;
  {
    MutexLock lock(mu_);
    auto it = shapes_.find(shape);
    if (it != shapes_.end() && !it->second.ready.empty()) {
      task = std::move(it->second.ready.front());
      it->second.ready.pop_front();
    }
    if (it != shapes_.end() && it->second.ready.empty() && it->second.requested == 0) {
      shapes_.erase(it);
    }
  }
  if (!task) {
    GiveBack(lease, /*worker_failed=*/false);
    return;
  }
  Run(shape, lease, task);
}

void TaskSubmitter::Run(const std::string& shape, const Lease& lease,
                        const std::shared_ptr<Task>& task) {
  proto::TaskSpec attempt = task->spec;
  attempt.set_actor_id(lease.worker.Binary());
  attempt.set_lease_id(lease.id);
  ports_.push(lease.worker, std::move(attempt), task->deps,
              [this, shape, lease, task](proto::PushTaskReply reply) {
                OnReply(shape, lease, task, std::move(reply));
              });
}

void TaskSubmitter::OnReply(const std::string& shape, const Lease& lease,
                            const std::shared_ptr<Task>& task, proto::PushTaskReply reply) {
  Status status = reply.returns_size() > 0 ? ValueStatus(reply.returns(0)) : Status::Ok();
  const bool worker_died = status.code() == StatusCode::kUnavailable;
  const bool retryable = reply.returns_size() > 0 && reply.returns(0).retryable();
  const int max = task->spec.max_retries();
  const bool retry = (worker_died || retryable) && (max < 0 || task->spec.attempt() < max);
  if (retry) task->spec.set_attempt(task->spec.attempt() + 1);
  if (!retry && worker_died) {
    reply = ErrorReply(task->spec,
                       MakeErrorValue(Status::Unavailable(
                           "the worker process running task " + task->spec.method() +
                           " died (attempts: " + std::to_string(task->spec.attempt() + 1) +
                           "): " + status.message())));
  }
  if (retry) Enqueue(task);
  if (worker_died) {
    GiveBack(lease, /*worker_failed=*/true);
  } else {
    RunNext(shape, lease);  // the worker is fine: keep it busy, or give it back
  }
  if (!retry) task->done(lease.worker, std::move(reply));
}

void TaskSubmitter::GiveBack(const Lease& lease, bool worker_failed) {
  proto::ReturnWorker give_back;
  give_back.set_lease_id(lease.id);
  give_back.set_worker_failed(worker_failed);
  ports_.give_back(give_back);
}

proto::PushTaskReply TaskSubmitter::ErrorReply(const proto::TaskSpec& spec,
                                               const proto::ObjectValueProto& error) {
  proto::PushTaskReply reply;
  for (int i = 0; i < std::max(1, spec.return_ids_size()); ++i) *reply.add_returns() = error;
  return reply;
}

}  // namespace ferry::core
