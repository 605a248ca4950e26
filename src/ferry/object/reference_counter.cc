#include "ferry/object/reference_counter.h"

#include <algorithm>

#include "ferry/common/logging.h"

namespace ferry::object {

Status ReferenceCounter::AddOwnedObject(const ObjectId& id) {
  MutexLock lock(mu_);
  if (!entries_.try_emplace(id).second) {
    return Status::AlreadyExists("object " + id.Hex() + " is already tracked");
  }
  return Status::Ok();
}

bool ReferenceCounter::AddLocalRef(const ObjectId& id) {
  MutexLock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  it->second.local++;
  return true;
}

bool ReferenceCounter::RemoveLocalRef(const ObjectId& id) {
  std::vector<ObjectId> freed;
  {
    MutexLock lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    if (it->second.local == 0) {
      FERRY_LOG(ERROR) << "RemoveLocalRef of " << id.Hex() << " with no local refs; ignored";
      return false;
    }
    it->second.local--;
    EraseIfUnreferenced(it, &freed);
  }
  RunOnFree(freed);
  return true;
}

void ReferenceCounter::AddSubmittedTaskRefs(std::span<const ObjectId> ids) {
  MutexLock lock(mu_);
  for (const ObjectId& id : ids) {
    auto it = entries_.find(id);
    if (it != entries_.end()) it->second.submitted++;
  }
}

void ReferenceCounter::RemoveSubmittedTaskRefs(std::span<const ObjectId> ids) {
  std::vector<ObjectId> freed;
  {
    MutexLock lock(mu_);
    for (const ObjectId& id : ids) {
      auto it = entries_.find(id);
      if (it == entries_.end()) continue;
      if (it->second.submitted == 0) {
        FERRY_LOG(ERROR) << "RemoveSubmittedTaskRefs of " << id.Hex()
                         << " with no submitted refs; ignored";
        continue;
      }
      it->second.submitted--;
      EraseIfUnreferenced(it, &freed);
    }
  }
  RunOnFree(freed);
}

bool ReferenceCounter::AddBorrower(const ObjectId& id, const WorkerId& borrower, uint64_t epoch) {
  MutexLock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  uint64_t& latest = it->second.borrowers[borrower];
  latest = std::max(latest, epoch);
  return true;
}

bool ReferenceCounter::RemoveBorrower(const ObjectId& id, const WorkerId& borrower,
                                      uint64_t epoch) {
  std::vector<ObjectId> freed;
  {
    MutexLock lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    auto b = it->second.borrowers.find(borrower);
    if (b == it->second.borrowers.end() || b->second > epoch) return false;
    it->second.borrowers.erase(b);
    EraseIfUnreferenced(it, &freed);
  }
  RunOnFree(freed);
  return true;
}

void ReferenceCounter::RemoveWorkerBorrows(const WorkerId& worker) {
  std::vector<ObjectId> freed;
  {
    MutexLock lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      auto next = std::next(it);
      if (it->second.borrowers.erase(worker) > 0) EraseIfUnreferenced(it, &freed);
      it = next;
    }
  }
  RunOnFree(freed);
}

bool ReferenceCounter::Pin(const ObjectId& id) {
  MutexLock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  it->second.pinned = true;
  return true;
}

bool ReferenceCounter::Has(const ObjectId& id) const {
  MutexLock lock(mu_);
  return entries_.contains(id);
}

size_t ReferenceCounter::NumTracked() const {
  MutexLock lock(mu_);
  return entries_.size();
}

std::optional<ReferenceCounter::Counts> ReferenceCounter::GetCounts(const ObjectId& id) const {
  MutexLock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  const Entry& e = it->second;
  return Counts{e.local, e.submitted, e.borrowers.size(), e.pinned};
}

std::vector<ReferenceCounter::Tracked> ReferenceCounter::List(size_t max) const {
  std::vector<Tracked> out;
  {
    MutexLock lock(mu_);
    out.reserve(entries_.size());
    for (const auto& [id, e] : entries_) {
      Tracked t{id, Counts{e.local, e.submitted, e.borrowers.size(), e.pinned}, {}, e.created};
      t.borrowers.reserve(e.borrowers.size());
      for (const auto& [worker, epoch] : e.borrowers) t.borrowers.push_back(worker);
      out.push_back(std::move(t));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Tracked& a, const Tracked& b) { return a.created < b.created; });
  if (out.size() > max) out.resize(max);
  return out;
}

void ReferenceCounter::EraseIfUnreferenced(Map::iterator it, std::vector<ObjectId>* freed) {
  if (!it->second.Unreferenced()) return;
  freed->push_back(it->first);
  entries_.erase(it);
}

void ReferenceCounter::RunOnFree(const std::vector<ObjectId>& freed) {
  if (!on_free_) return;
  for (const ObjectId& id : freed) on_free_(id);
}

}  // namespace ferry::object
