#include "py_ready.h"

namespace ferry::python {

void ReadyNotifier::Watch(core::CoreWorker& core, const core::ObjectRef& ref, uint64_t token) {
  std::weak_ptr<ReadyNotifier> self = weak_from_this();
  core.Resolve(ref.ToProto(), [self, token](core::ValuePtr) {
    if (auto notifier = self.lock()) notifier->Push(token);
  });
}

void ReadyNotifier::Push(uint64_t token) {
  {
    MutexLock lock(mu_);
    if (closed_) return;
    ready_.push_back(token);
  }
  cv_.notify_one();
}

std::optional<std::vector<uint64_t>> ReadyNotifier::Next() {
  MutexLock lock(mu_);
  cv_.wait(lock.native(), [&]() FERRY_REQUIRES(mu_) { return closed_ || !ready_.empty(); });
  if (closed_) return std::nullopt;
  std::vector<uint64_t> out;
  out.swap(ready_);
  return out;
}

void ReadyNotifier::Close() {
  {
    MutexLock lock(mu_);
    closed_ = true;
    ready_.clear();
  }
  cv_.notify_all();
}

}  // namespace ferry::python
