#include "ferry/core/ref_tracker.h"

#include <algorithm>
#include <map>

#include "ferry/common/logging.h"

namespace ferry::core {

void RefTracker::AddLocalRef(const ObjectRef& ref) {
  if (Owns(ref)) {
    owned_.AddLocalRef(ref.id);
    return;
  }
  MutexLock lock(mu_);
  uint64_t epoch;
  if (AddBorrowedLocked(ref, &epoch)) {
    // A copy made from nothing this process counted: the caller broke the
    // contract. Counted anyway; the owner learns of it on the next
    // deserialization or never, which only keeps the object longer.
    FERRY_LOG(WARNING) << "a copy of borrowed object " << ref.id.Hex()
                       << " was made without a registered borrow";
  }
}

void RefTracker::RemoveLocalRef(const ObjectRef& ref) {
  if (Owns(ref)) {
    owned_.RemoveLocalRef(ref.id);
    return;
  }
  std::vector<Removal> removals;
  {
    MutexLock lock(mu_);
    RemoveBorrowedLocked(ref.id, &removals);
  }
  SendRemovals(removals);
}

bool RefTracker::AddDeserializedRef(const ObjectRef& ref) {
  if (Owns(ref)) {
    owned_.AddLocalRef(ref.id);
    return false;
  }
  MutexLock lock(mu_);
  uint64_t epoch;
  return AddBorrowedLocked(ref, &epoch);
}

bool RefTracker::AddBorrowedLocked(const ObjectRef& ref, uint64_t* epoch) {
  auto [it, inserted] = borrowed_.try_emplace(ref.id);
  Borrowed& b = it->second;
  if (inserted) {
    b.owner_address = ref.owner_address;
    b.owner_id = ref.owner_id;
    b.epoch = next_epoch_++;
  }
  b.count++;
  *epoch = b.epoch;
  return inserted;
}

void RefTracker::RemoveBorrowedLocked(const ObjectId& id, std::vector<Removal>* removals) {
  auto it = borrowed_.find(id);
  if (it == borrowed_.end()) return;
  if (--it->second.count > 0) return;
  removals->push_back(Removal{std::move(it->second.owner_address), id, it->second.epoch});
  borrowed_.erase(it);
}

void RefTracker::SendRemovals(const std::vector<Removal>& removals) {
  if (removals.empty()) return;
  // One message per owner.
  std::map<std::string, proto::Borrows> by_owner;
  for (const Removal& r : removals) {
    proto::Borrows& msg = by_owner[r.owner_address];
    msg.add_object_ids(r.id.Binary());
    msg.add_epochs(r.epoch);
  }
  for (auto& [address, msg] : by_owner) {
    msg.set_borrower_id(self_.Binary());
    peers_.Notify(address, proto::REMOVE_BORROWERS, msg);
  }
}

Status RefTracker::RegisterBorrows(std::span<const ObjectRef> refs, Deadline deadline) {
  std::map<std::string, proto::Borrows> by_owner;
  {
    MutexLock lock(mu_);
    for (const ObjectRef& ref : refs) {
      auto it = borrowed_.find(ref.id);
      if (it == borrowed_.end()) continue;  // already dropped again
      proto::Borrows& msg = by_owner[it->second.owner_address];
      msg.add_object_ids(ref.id.Binary());
      msg.add_epochs(it->second.epoch);
    }
  }
  for (auto& [address, msg] : by_owner) {
    msg.set_borrower_id(self_.Binary());
    registration_requests_.fetch_add(1, std::memory_order_relaxed);
    auto reply = peers_.CallSync(address, proto::ADD_BORROWERS, msg, deadline);
    if (!reply.ok() && reply.status().code() == StatusCode::kDeadlineExceeded) {
      return reply.status().WithContext("registering borrowed objects with their owner " + address);
    }
    // Unavailable: the owner is gone, and its objects with it; reading them
    // says so.
  }
  return Status::Ok();
}

void RefTracker::Hold(const ObjectId& value_id, std::span<const ObjectRef> refs) {
  if (refs.empty()) return;
  MutexLock lock(mu_);
  std::vector<ObjectRef>& held = holds_[value_id].refs;
  if (held.empty()) num_holds_.fetch_add(1, std::memory_order_relaxed);
  for (const ObjectRef& ref : refs) {
    if (Owns(ref)) {
      owned_.AddLocalRef(ref.id);
    } else {
      uint64_t epoch;
      AddBorrowedLocked(ref, &epoch);
    }
    held.push_back(ref);
  }
}

void RefTracker::Release(const ObjectId& value_id) {
  if (num_holds_.load(std::memory_order_relaxed) == 0) return;
  std::vector<ObjectRef> held;
  std::vector<Removal> removals;
  {
    MutexLock lock(mu_);
    auto it = holds_.find(value_id);
    if (it == holds_.end()) return;
    held = std::move(it->second.refs);
    if (!it->second.owner.IsNil()) {
      auto tied = tied_.find(it->second.owner);
      if (tied != tied_.end()) {
        tied->second.erase(value_id);
        if (tied->second.empty()) tied_.erase(tied);
      }
    }
    holds_.erase(it);
    num_holds_.fetch_sub(1, std::memory_order_relaxed);
    for (const ObjectRef& ref : held) {
      if (!Owns(ref)) RemoveBorrowedLocked(ref.id, &removals);
    }
  }
  // Owned refs last, without the lock: freeing one may release holds of
  // the values it contained.
  for (const ObjectRef& ref : held) {
    if (Owns(ref)) owned_.RemoveLocalRef(ref.id);
  }
  SendRemovals(removals);
}

void RefTracker::HoldForever(const ObjectRef& ref) {
  if (Owns(ref)) {
    owned_.Pin(ref.id);
    return;
  }
  MutexLock lock(mu_);
  uint64_t epoch;
  AddBorrowedLocked(ref, &epoch);
}

Status RefTracker::HandleAddBorrowers(std::string_view payload) {
  proto::Borrows msg;
  if (!msg.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return Status::InvalidArgument("malformed Borrows");
  }
  FERRY_ASSIGN_OR_RETURN(WorkerId borrower, WorkerId::FromBinary(msg.borrower_id()));
  for (int i = 0; i < msg.object_ids_size(); ++i) {
    auto id = ObjectId::FromBinary(msg.object_ids(i));
    if (!id.ok()) continue;
    // An object already freed takes no borrower: reading it reports that.
    owned_.AddBorrower(*id, borrower, i < msg.epochs_size() ? msg.epochs(i) : 0);
  }
  return Status::Ok();
}

void RefTracker::HandleRemoveBorrowers(std::string_view payload) {
  proto::Borrows msg;
  if (!msg.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return;
  auto borrower = WorkerId::FromBinary(msg.borrower_id());
  if (!borrower.ok()) return;
  for (int i = 0; i < msg.object_ids_size(); ++i) {
    auto id = ObjectId::FromBinary(msg.object_ids(i));
    if (!id.ok()) continue;
    owned_.RemoveBorrower(*id, *borrower, i < msg.epochs_size() ? msg.epochs(i) : UINT64_MAX);
  }
}

void RefTracker::TieHolds(const WorkerId& owner, std::span<const ObjectId> value_ids) {
  MutexLock lock(mu_);
  for (const ObjectId& id : value_ids) {
    auto it = holds_.find(id);
    if (it == holds_.end()) continue;  // freed already
    it->second.owner = owner;
    tied_[owner].insert(id);
  }
}

void RefTracker::OnWorkerGone(const WorkerId& worker) {
  owned_.RemoveWorkerBorrows(worker);
  std::unordered_set<ObjectId> orphaned;
  {
    MutexLock lock(mu_);
    auto it = tied_.find(worker);
    if (it == tied_.end()) return;
    orphaned = std::move(it->second);
    tied_.erase(it);
  }
  for (const ObjectId& id : orphaned) Release(id);
}

void RefTracker::WatchPeer(const std::shared_ptr<rpc::Channel>& channel) {
  auto peer = WorkerId::FromBinary(channel->peer().worker_id());
  if (!peer.ok()) return;  // not a ferry process's connection
  const rpc::Channel* key = channel.get();
  {
    MutexLock lock(mu_);
    if (!watched_.insert(key).second) return;
  }
  channel->AddCloseCallback([this, key, worker = *peer](Status) {
    {
      MutexLock lock(mu_);
      watched_.erase(key);
    }
    OnWorkerGone(worker);
  });
}

size_t RefTracker::NumBorrowed() const {
  MutexLock lock(mu_);
  return borrowed_.size();
}

size_t RefTracker::NumHolds() const {
  MutexLock lock(mu_);
  return holds_.size();
}

std::vector<RefTracker::BorrowedRef> RefTracker::ListBorrowed(size_t max) const {
  std::vector<BorrowedRef> out;
  MutexLock lock(mu_);
  out.reserve(std::min(max, borrowed_.size()));
  for (const auto& [id, b] : borrowed_) {
    if (out.size() == max) break;
    out.push_back({id, b.owner_id, b.owner_address, b.count});
  }
  return out;
}

int64_t RefTracker::BorrowedCount(const ObjectId& id) const {
  MutexLock lock(mu_);
  auto it = borrowed_.find(id);
  return it == borrowed_.end() ? 0 : it->second.count;
}

}  // namespace ferry::core
