// TensorStore: the tensors this process keeps for RDT objects.
//
// When a method marked tensor_transport=T returns, the worker moves every
// tensor of the value here under the return's ObjectId; transports read them
// to serve sends, the producer's own tasks read them without a copy, and the
// owner's free message erases them. WaitFreed is the guide's
// wait_tensor_freed: it blocks until no stored object holds a given tensor,
// so user code may safely mutate it again.
//
// Lifecycle: objects enter with Put and leave with Erase, Take or Clear. The
// store holds one reference to each tensor's keep-alive; dropping the last
// one may run a framework's DLPack deleter, which the store always does
// outside its lock.
//
// THREAD CONTRACT: thread-safe; every method may be called from any thread.
// Erase, Take and Clear wake WaitFreed callers. No callback runs under the
// lock.
//
//   TensorStore store;
//   FERRY_RETURN_IF_ERROR(store.Put(id, {tensor}));
//   std::optional<std::vector<Tensor>> ts = store.Get(id);  // shares the bytes
//   store.Erase(id);                                         // owner freed it
//   FERRY_RETURN_IF_ERROR(store.WaitFreed(tensor.data(), Deadline::After(10s)));
#pragma once

#include <condition_variable>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/status.h"
#include "ferry/tensor/tensor.h"

namespace ferry::tensor {

class TensorStore {
 public:
  struct Stats {
    uint64_t num_objects = 0;
    uint64_t num_tensors = 0;
    uint64_t bytes = 0;           // sum of nbytes over stored tensors (shared bytes count twice)
    uint64_t waiters = 0;         // threads blocked in WaitFreed now
    uint64_t waiter_wakeups = 0;  // times a blocked WaitFreed woke and re-checked
  };

  TensorStore() = default;
  TensorStore(const TensorStore&) = delete;
  TensorStore& operator=(const TensorStore&) = delete;

  // Stores `tensors` under `id`. AlreadyExists if `id` is stored (the store is
  // unchanged and `tensors` are dropped).
  Status Put(const ObjectId& id, std::vector<Tensor> tensors) FERRY_EXCLUDES(mu_);
  // Copies of the tensors stored under `id` (sharing their bytes), or nullopt.
  std::optional<std::vector<Tensor>> Get(const ObjectId& id) const FERRY_EXCLUDES(mu_);
  // Removes `id` and returns its tensors, or nullopt if absent.
  std::optional<std::vector<Tensor>> Take(const ObjectId& id) FERRY_EXCLUDES(mu_);
  // Removes `id`; false if it was absent.
  bool Erase(const ObjectId& id) FERRY_EXCLUDES(mu_);
  // Removes every object.
  void Clear() FERRY_EXCLUDES(mu_);

  // True if a stored tensor's byte range contains `data` (see
  // Tensor::Contains: a pointer into the middle of a tensor counts).
  bool Holds(const void* data) const FERRY_EXCLUDES(mu_);
  // Blocks until Holds(data) is false. OK at once if it already is;
  // DeadlineExceeded (naming the object that still holds it) when `deadline`
  // passes first.
  Status WaitFreed(const void* data, Deadline deadline) FERRY_EXCLUDES(mu_);

  Stats GetStats() const FERRY_EXCLUDES(mu_);
  // One stored object, for `ferry memory`.
  struct Entry {
    ObjectId id;
    uint64_t num_tensors = 0;
    uint64_t bytes = 0;
    std::string device;  // of its first tensor: "cpu", "cuda:0"
  };
  // Up to `max` stored objects, in no order.
  std::vector<Entry> List(size_t max) const FERRY_EXCLUDES(mu_);

 private:
  // The id of an object holding `data`, if any.
  std::optional<ObjectId> FindHolder(const void* data) const FERRY_REQUIRES(mu_);

  mutable Mutex mu_;
  std::condition_variable freed_cv_;  // signalled after objects are removed
  std::unordered_map<ObjectId, std::vector<Tensor>> objects_ FERRY_GUARDED_BY(mu_);
  uint64_t num_tensors_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t bytes_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t waiters_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t waiter_wakeups_ FERRY_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry::tensor
