#include "ferry/object/memory_store.h"

#include <algorithm>
#include <string>

#include "ferry/common/logging.h"

namespace ferry::object {

bool MemoryStore::Put(const ObjectId& id, Value value) {
  FERRY_CHECK(value != nullptr) << "MemoryStore::Put of a null value for " << id.Hex();
  std::vector<Callback> callbacks;
  {
    MutexLock lock(mu_);
    Entry& entry = entries_[id];
    if (entry.value != nullptr) return false;
    entry.value = value;
    num_ready_++;
    for (auto& [waiter, position] : entry.waiters) {
      waiter->results[position] = value;
      // Notify under the lock: the waiter cannot return (and destroy its cv)
      // before it reacquires the lock.
      if (waiter->remaining > 0 && --waiter->remaining == 0) waiter->cv.notify_one();
    }
    entry.waiters.clear();
    callbacks.swap(entry.callbacks);
  }
  for (Callback& cb : callbacks) cb(value);
  return true;
}

bool MemoryStore::Replace(const ObjectId& id, Value value) {
  FERRY_CHECK(value != nullptr) << "MemoryStore::Replace with a null value for " << id.Hex();
  MutexLock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.value == nullptr) return false;
  it->second.value = std::move(value);
  return true;
}

MemoryStore::Value MemoryStore::GetIfReady(const ObjectId& id) const {
  MutexLock lock(mu_);
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.value;
}

void MemoryStore::Subscribe(const ObjectId& id, Callback callback) {
  Value ready;
  {
    MutexLock lock(mu_);
    Entry& entry = entries_[id];
    if (entry.value == nullptr) {
      entry.callbacks.push_back(std::move(callback));
      return;
    }
    ready = entry.value;
  }
  callback(std::move(ready));
}

size_t MemoryStore::WaitFor(std::span<const ObjectId> ids, size_t needed, Deadline deadline,
                            Waiter* waiter) {
  waiter->results.assign(ids.size(), nullptr);
  MutexLock lock(mu_);
  size_t ready = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto it = entries_.find(ids[i]);
    if (it != entries_.end() && it->second.value != nullptr) {
      waiter->results[i] = it->second.value;
      ready++;
    }
  }
  if (ready >= needed || deadline.Expired()) return ready;

  std::vector<size_t> pending;
  pending.reserve(ids.size() - ready);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (waiter->results[i] != nullptr) continue;
    entries_[ids[i]].waiters.emplace_back(waiter, i);
    pending.push_back(i);
  }
  waiter->remaining = needed - ready;
  auto done = [waiter] { return waiter->remaining == 0; };
  if (deadline.IsNever()) {
    waiter->cv.wait(lock.native(), done);
  } else {
    waiter->cv.wait_until(lock.native(), deadline.time_point(), done);
  }

  // Unregister from the entries still pending; a Put already cleared the rest.
  for (size_t i : pending) {
    if (waiter->results[i] != nullptr) {
      ready++;
      continue;
    }
    auto it = entries_.find(ids[i]);
    if (it == entries_.end()) continue;
    auto& ws = it->second.waiters;
    ws.erase(std::remove_if(ws.begin(), ws.end(),
                            [waiter](const auto& w) { return w.first == waiter; }),
             ws.end());
    if (it->second.Empty()) entries_.erase(it);
  }
  return ready;
}

StatusOr<std::vector<MemoryStore::Value>> MemoryStore::Get(std::span<const ObjectId> ids,
                                                           Deadline deadline) {
  Waiter waiter;
  size_t ready = WaitFor(ids, ids.size(), deadline, &waiter);
  if (ready < ids.size()) {
    return Status::DeadlineExceeded(
        "timed out waiting for objects: " + std::to_string(ids.size() - ready) + " of " +
        std::to_string(ids.size()) + " not ready");
  }
  return std::move(waiter.results);
}

std::vector<bool> MemoryStore::Wait(std::span<const ObjectId> ids, size_t num_ready,
                                    Deadline deadline) {
  Waiter waiter;
  WaitFor(ids, std::min(num_ready, ids.size()), deadline, &waiter);
  std::vector<bool> ready(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) ready[i] = waiter.results[i] != nullptr;
  return ready;
}

void MemoryStore::Erase(const ObjectId& id) {
  Value dropped;  // released after unlocking
  MutexLock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.value == nullptr) return;
  dropped = std::move(it->second.value);
  num_ready_--;
  if (it->second.Empty()) entries_.erase(it);
}

size_t MemoryStore::Size() const {
  MutexLock lock(mu_);
  return num_ready_;
}

}  // namespace ferry::object
