// ValueGather: collects the completions of several asynchronous value
// lookups (CoreWorker::Resolve) for one blocking caller (Get, Wait).
//
// Shared (std::shared_ptr) with the lookups' callbacks, which may outlive the
// caller's wait. Each slot is set once; later sets of a slot are ignored.
//
// THREAD CONTRACT: thread-safe. Set may run on any thread (usually the io
// thread); WaitFor blocks the caller, spinning briefly before it sleeps.
//
//   auto gather = std::make_shared<ValueGather>(refs.size());
//   for (size_t i = 0; i < refs.size(); ++i)
//     resolve(refs[i], [gather, i](ValuePtr v) { gather->Set(i, std::move(v)); });
//   if (gather->WaitFor(refs.size(), deadline) == refs.size()) use(gather->Take());
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/common/spin_wait.h"
#include "ferry/core/argument_resolver.h"

namespace ferry::core {

class ValueGather {
 public:
  explicit ValueGather(size_t n) : values_(n) {}

  void Set(size_t i, ValuePtr v) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (values_[i]) return;
      values_[i] = std::move(v);
      ready_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
  }
  // Waits until `want` values are in or the deadline passes; returns how many.
  size_t WaitFor(size_t want, Deadline deadline) {
    auto pred = [&] { return ready_.load(std::memory_order_acquire) >= want; };
    if (SpinUntil(pred)) return ready_.load();
    std::unique_lock<std::mutex> lock(mu_);
    if (deadline.IsNever()) {
      cv_.wait(lock, pred);
    } else {
      cv_.wait_until(lock, deadline.time_point(), pred);
    }
    return ready_.load();
  }
  size_t NumReady() const { return ready_.load(std::memory_order_acquire); }
  std::vector<ValuePtr> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return values_;
  }
  std::vector<bool> Flags() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<bool> flags(values_.size());
    for (size_t i = 0; i < values_.size(); ++i) flags[i] = values_[i] != nullptr;
    return flags;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ValuePtr> values_;
  std::atomic<size_t> ready_{0};
};

}  // namespace ferry::core
