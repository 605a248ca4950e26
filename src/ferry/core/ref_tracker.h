// RefTracker: this process's side of distributed reference counting (Ray's
// ownership model with borrowers, NSDI'21).
//
// Every live ObjectRef in a process is counted here. A ref this process owns
// counts in the ReferenceCounter (the owner table); a ref owned elsewhere is
// *borrowed*: the process registers with the owner as a borrower when its
// first copy appears and tells the owner when its last copy dies. The owner
// frees an object when its own refs, its in-flight task arguments and its
// borrowers are all gone (ReferenceCounter).
//
// How a ref that travels inside a value never dies in flight:
//   * the process that serializes a ref into a value (a return, a put, call
//     arguments) holds it, under the value's id, until that value is freed
//     (Hold / Release);
//   * a process that deserializes a ref it does not own registers with the
//     owner, and waits for the owner's reply, before the value is handed to
//     user code (AddDeserializedRef, then RegisterBorrows). Whoever reads a
//     value holds a ref to it (or it is a running task's argument), so the
//     serializer's hold outlives the registration.
// A borrower's death (its connection to the owner closes) releases its
// borrows (OnWorkerGone); so does the death of the owner of a value this
// process holds refs for (a return of a task run here, owned by its caller:
// TieHolds), since nobody else would ever free that value. Registrations carry an epoch so that a
// removal overtaken by a newer registration is ignored (ReferenceCounter).
//
// THREAD CONTRACT: thread-safe. RegisterBorrows blocks (never call it on the
// io thread); everything else returns at once and may run on any thread.
// Messages go out through the PeerMessenger without the lock held.
//
//   RefTracker tracker(self_id, owned_counter, messenger);
//   if (tracker.AddDeserializedRef(ref)) pending.push_back(ref);  // while unpickling
//   FERRY_RETURN_IF_ERROR(tracker.RegisterBorrows(pending, deadline));
//   tracker.Hold(value_id, refs_inside_value);   // serializing a return
//   tracker.Release(value_id);                   // the value was freed
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/core/object_ref.h"
#include "ferry/core/peer_messenger.h"
#include "ferry/object/reference_counter.h"
#include "ferry/rpc/channel.h"
#include "ferry/status.h"

namespace ferry::core {

class RefTracker {
 public:
  RefTracker(WorkerId self, object::ReferenceCounter& owned, PeerMessenger& peers)
      : self_(self), owned_(owned), peers_(peers) {}
  RefTracker(const RefTracker&) = delete;
  RefTracker& operator=(const RefTracker&) = delete;

  bool Owns(const ObjectRef& ref) const { return ref.owner_id == self_; }

  // One more live copy of `ref` made from one this process already counts
  // (a new handle, a ref a task of ours returned): never a first borrow.
  void AddLocalRef(const ObjectRef& ref) FERRY_EXCLUDES(mu_);
  // One copy fewer; the last copy of a borrowed ref tells its owner.
  void RemoveLocalRef(const ObjectRef& ref) FERRY_EXCLUDES(mu_);

  // A copy of `ref` came out of a serialized value. True when this process
  // did not borrow it yet: the caller must pass it to RegisterBorrows before
  // the value reaches user code.
  bool AddDeserializedRef(const ObjectRef& ref) FERRY_EXCLUDES(mu_);
  // Registers this process as a borrower of `refs` (from AddDeserializedRef)
  // with their owners, one request per owner, and waits for the replies. An
  // owner that is gone is not an error here: reading the object later
  // reports it.
  Status RegisterBorrows(std::span<const ObjectRef> refs, Deadline deadline) FERRY_EXCLUDES(mu_);

  // Keeps `refs` alive while the value `value_id` (which contains them, or
  // a call's arguments) lives; adds to an earlier hold of the same id.
  void Hold(const ObjectId& value_id, std::span<const ObjectRef> refs) FERRY_EXCLUDES(mu_);
  // Ends the hold of `value_id`, if any.
  void Release(const ObjectId& value_id) FERRY_EXCLUDES(mu_);
  // The values `value_ids` held here are owned by `owner`, another process
  // (a task's returns, owned by its caller): `owner`'s death releases their
  // holds (OnWorkerGone), as its FREE_OBJECTS would have.
  void TieHolds(const WorkerId& owner, std::span<const ObjectId> value_ids) FERRY_EXCLUDES(mu_);
  // A ref pickled where ferry cannot follow it: it stays alive as long as
  // this process does (owned: pinned in the owner table; borrowed: this
  // process never stops borrowing it).
  void HoldForever(const ObjectRef& ref) FERRY_EXCLUDES(mu_);

  // Owner side: a borrower's ADD_BORROWERS / REMOVE_BORROWERS.
  Status HandleAddBorrowers(std::string_view payload);
  void HandleRemoveBorrowers(std::string_view payload);
  // `worker` is gone (its connection closed): its borrows of our objects
  // end, and so do the holds tied to it (TieHolds).
  void OnWorkerGone(const WorkerId& worker) FERRY_EXCLUDES(mu_);
  // The connection of a peer that borrows from this process, or owns values
  // it holds: its close is the peer's death (OnWorkerGone). Each connection
  // is watched once. The tracker must outlive the connection's close
  // callback (CoreWorker closes its connections before it destroys the
  // tracker).
  void WatchPeer(const std::shared_ptr<rpc::Channel>& channel) FERRY_EXCLUDES(mu_);

  // For tests and `stats`: refs this process borrows, and value holds.
  size_t NumBorrowed() const FERRY_EXCLUDES(mu_);
  size_t NumHolds() const FERRY_EXCLUDES(mu_);
  // ADD_BORROWERS requests sent so far (one per owner per RegisterBorrows).
  uint64_t NumRegistrationRequests() const {
    return registration_requests_.load(std::memory_order_relaxed);
  }
  // The live copies of borrowed `id` here (0 when not borrowed).
  int64_t BorrowedCount(const ObjectId& id) const FERRY_EXCLUDES(mu_);
  // Up to `max` refs this process borrows, with their owners and live
  // copies (`ferry memory`).
  struct BorrowedRef {
    ObjectId id;
    WorkerId owner_id;
    std::string owner_address;
    int64_t copies = 0;
  };
  std::vector<BorrowedRef> ListBorrowed(size_t max) const FERRY_EXCLUDES(mu_);

 private:
  struct Borrowed {
    std::string owner_address;
    WorkerId owner_id;
    int64_t count = 0;
    uint64_t epoch = 0;  // of this process's latest registration
  };
  struct Held {
    std::vector<ObjectRef> refs;
    WorkerId owner;  // of the value, when tied to another process (TieHolds)
  };
  struct Removal {
    std::string owner_address;
    ObjectId id;
    uint64_t epoch;
  };

  // Counts a copy of borrowed `ref`; true (and sets *epoch) when it is the
  // first.
  bool AddBorrowedLocked(const ObjectRef& ref, uint64_t* epoch) FERRY_REQUIRES(mu_);
  // Drops a copy of borrowed `id`; the last one appends its removal.
  void RemoveBorrowedLocked(const ObjectId& id, std::vector<Removal>* removals) FERRY_REQUIRES(mu_);
  void SendRemovals(const std::vector<Removal>& removals);

  const WorkerId self_;
  object::ReferenceCounter& owned_;
  PeerMessenger& peers_;

  mutable Mutex mu_;
  std::unordered_map<ObjectId, Borrowed> borrowed_ FERRY_GUARDED_BY(mu_);
  std::unordered_map<ObjectId, Held> holds_ FERRY_GUARDED_BY(mu_);
  // Owner -> the held values tied to it.
  std::unordered_map<WorkerId, std::unordered_set<ObjectId>> tied_ FERRY_GUARDED_BY(mu_);
  std::unordered_set<const rpc::Channel*> watched_ FERRY_GUARDED_BY(mu_);
  uint64_t next_epoch_ FERRY_GUARDED_BY(mu_) = 1;
  // Lets Release skip the lock in processes that never hold a value's refs
  // (the common case: most values contain none).
  std::atomic<size_t> num_holds_{0};
  std::atomic<uint64_t> registration_requests_{0};
};

}  // namespace ferry::core
