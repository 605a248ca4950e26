#include "ferry/tensor/tensor_store.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

namespace ferry::tensor {
namespace {

uint64_t TotalBytes(const std::vector<Tensor>& tensors) {
  uint64_t total = 0;
  for (const Tensor& t : tensors) total += t.nbytes();
  return total;
}

std::string PointerString(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%p", p);
  return buf;
}

}  // namespace

Status TensorStore::Put(const ObjectId& id, std::vector<Tensor> tensors) {
  // Declared before the lock so that, on a duplicate, the rejected tensors
  // (whose release may run a framework deleter) die after it is released.
  std::vector<Tensor> incoming = std::move(tensors);
  MutexLock lock(mu_);
  if (objects_.contains(id)) {
    return Status::AlreadyExists("tensor store already holds object " + id.Hex());
  }
  num_tensors_ += incoming.size();
  bytes_ += TotalBytes(incoming);
  objects_.emplace(id, std::move(incoming));
  return Status::Ok();
}

std::optional<std::vector<Tensor>> TensorStore::Get(const ObjectId& id) const {
  MutexLock lock(mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::vector<Tensor>> TensorStore::Take(const ObjectId& id) {
  std::optional<std::vector<Tensor>> taken;
  {
    MutexLock lock(mu_);
    auto it = objects_.find(id);
    if (it == objects_.end()) return std::nullopt;
    taken = std::move(it->second);
    objects_.erase(it);
    num_tensors_ -= taken->size();
    bytes_ -= TotalBytes(*taken);
  }
  freed_cv_.notify_all();
  return taken;
}

bool TensorStore::Erase(const ObjectId& id) {
  // The tensors die here, after Take released the lock.
  return Take(id).has_value();
}

void TensorStore::Clear() {
  std::unordered_map<ObjectId, std::vector<Tensor>> removed;
  {
    MutexLock lock(mu_);
    removed.swap(objects_);
    num_tensors_ = 0;
    bytes_ = 0;
  }
  freed_cv_.notify_all();
  // `removed` dies here, outside the lock.
}

std::optional<ObjectId> TensorStore::FindHolder(const void* data) const {
  for (const auto& [id, tensors] : objects_) {
    for (const Tensor& t : tensors) {
      if (t.Contains(data)) return id;
    }
  }
  return std::nullopt;
}

bool TensorStore::Holds(const void* data) const {
  MutexLock lock(mu_);
  return FindHolder(data).has_value();
}

Status TensorStore::WaitFreed(const void* data, Deadline deadline) {
  const Clock::time_point start = Clock::now();
  MutexLock lock(mu_);
  std::optional<ObjectId> holder = FindHolder(data);
  if (!holder.has_value()) return Status::Ok();
  ++waiters_;
  Status result = Status::Ok();
  while (true) {
    bool timed_out = false;
    if (deadline.IsNever()) {
      freed_cv_.wait(lock.native());
    } else {
      timed_out = freed_cv_.wait_until(lock.native(), deadline.time_point()) ==
                  std::cv_status::timeout;
    }
    ++waiter_wakeups_;
    holder = FindHolder(data);
    if (!holder.has_value()) break;
    if (timed_out) {
      const double waited = std::chrono::duration<double>(Clock::now() - start).count();
      result = Status::DeadlineExceeded(
          "wait_tensor_freed: the tensor at " + PointerString(data) + " is still held by object " +
          holder->Hex() + " after " + std::to_string(waited) +
          " s; it is freed when every ObjectRef to that object goes out of scope");
      break;
    }
  }
  --waiters_;
  return result;
}

TensorStore::Stats TensorStore::GetStats() const {
  MutexLock lock(mu_);
  return Stats{objects_.size(), num_tensors_, bytes_, waiters_, waiter_wakeups_};
}

std::vector<TensorStore::Entry> TensorStore::List(size_t max) const {
  std::vector<Entry> out;
  MutexLock lock(mu_);
  out.reserve(std::min(max, objects_.size()));
  for (const auto& [id, tensors] : objects_) {
    if (out.size() == max) break;
    Entry e{id, tensors.size(), 0, "cpu"};
    for (const Tensor& t : tensors) e.bytes += t.nbytes();
    if (!tensors.empty()) e.device = tensors.front().meta().device();
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace ferry::tensor
