// MemoryStore: the owner's table of object states — pending until a value
// (or an error value) is Put, then ready.
//
// Lifecycle: Put makes an object ready once (a later Put of the same id is
// ignored: values are immutable; only Replace swaps a lost one for its
// error), waking blocked Get/Wait calls and running
// Subscribe callbacks. Erase drops a ready value when the object is freed.
// Entries for pending objects exist only while someone waits or subscribes.
//
// Waiting is cheap: a Get or Wait that has to block registers one waiter
// (its own condition variable) with just the objects it is missing, and a
// Put wakes only waiters whose condition it completes. A Get of ready
// objects takes the mutex once.
//
// THREAD CONTRACT: thread-safe. Subscribe callbacks run exactly once, after
// the lock is released: on the thread of the Put that made the object ready,
// or on the caller's thread if it was already ready. They may call back into
// the store. Every blocking call takes a Deadline.
//
//   MemoryStore store;
//   store.Subscribe(id, [](MemoryStore::Value v) { Resolve(v); });
//   store.Put(id, std::make_shared<proto::ObjectValueProto>(value));   // runs the callback
//   FERRY_ASSIGN_OR_RETURN(auto values, store.Get(ids, Deadline::After(5s)));
//   std::vector<bool> ready = store.Wait(ids, /*num_ready=*/1, Deadline::After(1s));
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/status.h"

namespace ferry::object {

class MemoryStore {
 public:
  using Value = std::shared_ptr<const proto::ObjectValueProto>;
  using Callback = std::function<void(Value)>;

  MemoryStore() = default;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  // Marks `id` ready with `value` (non-null; it may carry an error in its
  // `error` field). Returns false, changing nothing, if `id` is already ready.
  bool Put(const ObjectId& id, Value value) FERRY_EXCLUDES(mu_);

  // Replaces the value of a ready `id` (an object found lost becomes its
  // error value). Returns false, changing nothing, if `id` is not ready.
  bool Replace(const ObjectId& id, Value value) FERRY_EXCLUDES(mu_);

  // The value if ready, else null. Never blocks.
  Value GetIfReady(const ObjectId& id) const FERRY_EXCLUDES(mu_);

  // Runs `callback(value)` exactly once when `id` becomes ready; at once, on
  // this thread, if it already is.
  void Subscribe(const ObjectId& id, Callback callback) FERRY_EXCLUDES(mu_);

  // Blocks until every id is ready and returns their values in order (an id
  // may repeat). DeadlineExceeded, naming how many of them were missing,
  // if the deadline passes first.
  StatusOr<std::vector<Value>> Get(std::span<const ObjectId> ids, Deadline deadline)
      FERRY_EXCLUDES(mu_);

  // Blocks until at least min(num_ready, ids.size()) of the ids are ready
  // (counting positions) or the deadline passes; returns readiness per id.
  std::vector<bool> Wait(std::span<const ObjectId> ids, size_t num_ready, Deadline deadline)
      FERRY_EXCLUDES(mu_);

  // Drops `id`'s value (the object was freed). Waiters and subscribers of a
  // still-pending id are left in place.
  void Erase(const ObjectId& id) FERRY_EXCLUDES(mu_);

  // Number of ready objects held.
  size_t Size() const FERRY_EXCLUDES(mu_);

 private:
  // One blocked Get or Wait. Lives on the waiting thread's stack; registered
  // in the entries of its missing ids and removed from them before it returns.
  struct Waiter {
    std::condition_variable cv;
    std::vector<Value> results;  // by position in the request
    size_t remaining = 0;        // Puts still needed; 0 wakes the waiter
  };
  struct Entry {
    Value value;
    std::vector<Callback> callbacks;
    std::vector<std::pair<Waiter*, size_t>> waiters;  // (waiter, position)
    bool Empty() const { return value == nullptr && callbacks.empty() && waiters.empty(); }
  };

  // Fills `waiter->results` with ready values; returns how many positions
  // were ready. When `needed` > that, registers the waiter for the rest,
  // blocks until they arrive or the deadline, and unregisters.
  size_t WaitFor(std::span<const ObjectId> ids, size_t needed, Deadline deadline, Waiter* waiter)
      FERRY_EXCLUDES(mu_);

  mutable Mutex mu_;
  std::unordered_map<ObjectId, Entry> entries_ FERRY_GUARDED_BY(mu_);
  size_t num_ready_ FERRY_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry::object
