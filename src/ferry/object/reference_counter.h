// ReferenceCounter: reference counts of the objects this process OWNS
// (Ray's ownership model: the submitter of the task that creates an object
// keeps its count).
//
// An owned object's count is the sum of
//   * local refs: live ObjectRef instances in this process,
//   * submitted-task refs: in-flight task arguments naming it,
//   * borrowers: other processes holding a ref, each counted once,
//   * a pin: for a ref pickled outside ferry's serializers (the user's own
//     pickle.dumps), whose holders cannot be tracked; a pinned object is
//     never freed.
//
// A borrower's registrations carry an epoch that grows with each one it
// makes; a removal older than the borrower's latest registration is stale
// (the two travelled different paths and crossed) and is ignored.
//
// The rule for when an object is freed: AddOwnedObject starts tracking with a
// count of zero and does NOT free it; the object is freed when a removal
// (RemoveLocalRef, RemoveSubmittedTaskRefs, RemoveBorrower,
// RemoveWorkerBorrows) brings the count from one to zero. So a ref created
// and dropped at once (AddOwnedObject, AddLocalRef, RemoveLocalRef) frees;
// an object whose first ref has not been made yet stays. Freeing removes the
// entry and then calls `on_free(id)`.
//
// Adds and removes for ids that are not tracked (objects owned elsewhere, or
// already freed) are ignored and return false; they never create entries.
//
// THREAD CONTRACT: thread-safe. on_free runs on the thread whose removal
// freed the object, after the lock is released, so it may call back into
// this counter.
//
//   ReferenceCounter refs([&](const ObjectId& id) { store.Erase(id); segments.Free(id); });
//   refs.AddOwnedObject(id);       // submitting the task that returns `id`
//   refs.AddLocalRef(id);          // the ObjectRef handed to the user
//   refs.RemoveLocalRef(id);       // the user dropped it: on_free(id) runs
//   refs.Has(id);                  // false
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/status.h"

namespace ferry::object {

class ReferenceCounter {
 public:
  using FreeCallback = std::function<void(const ObjectId&)>;

  // Snapshot of one object's counts, for tests and debugging.
  struct Counts {
    int64_t local = 0;
    int64_t submitted = 0;
    size_t borrowers = 0;
    bool pinned = false;
  };
  // One tracked object, for `ferry memory`.
  struct Tracked {
    ObjectId id;
    Counts counts;
    std::vector<WorkerId> borrowers;
    Clock::time_point created;  // when AddOwnedObject ran
  };

  // `on_free` may be empty.
  explicit ReferenceCounter(FreeCallback on_free) : on_free_(std::move(on_free)) {}
  ReferenceCounter(const ReferenceCounter&) = delete;
  ReferenceCounter& operator=(const ReferenceCounter&) = delete;

  // Starts tracking `id` with a zero count. AlreadyExists if tracked.
  Status AddOwnedObject(const ObjectId& id) FERRY_EXCLUDES(mu_);

  bool AddLocalRef(const ObjectId& id) FERRY_EXCLUDES(mu_);
  // False (and no change) if untracked or its local count is already zero.
  bool RemoveLocalRef(const ObjectId& id) FERRY_EXCLUDES(mu_);

  // One count per occurrence (an id passed twice counts twice). Untracked
  // ids are skipped.
  void AddSubmittedTaskRefs(std::span<const ObjectId> ids) FERRY_EXCLUDES(mu_);
  void RemoveSubmittedTaskRefs(std::span<const ObjectId> ids) FERRY_EXCLUDES(mu_);

  // A borrower counts once however often it is added; its epoch becomes the
  // largest it registered with.
  bool AddBorrower(const ObjectId& id, const WorkerId& borrower, uint64_t epoch = 0)
      FERRY_EXCLUDES(mu_);
  // Removes `borrower` unless it registered again with an epoch newer than
  // `epoch`. False (no change) if it was no borrower or the removal is stale.
  bool RemoveBorrower(const ObjectId& id, const WorkerId& borrower, uint64_t epoch = UINT64_MAX)
      FERRY_EXCLUDES(mu_);
  // `worker` died: drops it as a borrower of every object.
  void RemoveWorkerBorrows(const WorkerId& worker) FERRY_EXCLUDES(mu_);

  // Pins `id` for the life of this counter (it is never freed).
  bool Pin(const ObjectId& id) FERRY_EXCLUDES(mu_);

  bool Has(const ObjectId& id) const FERRY_EXCLUDES(mu_);
  size_t NumTracked() const FERRY_EXCLUDES(mu_);
  std::optional<Counts> GetCounts(const ObjectId& id) const FERRY_EXCLUDES(mu_);
  // Up to `max` tracked objects, oldest first.
  std::vector<Tracked> List(size_t max) const FERRY_EXCLUDES(mu_);

 private:
  struct Entry {
    int64_t local = 0;
    int64_t submitted = 0;
    std::unordered_map<WorkerId, uint64_t> borrowers;  // -> latest epoch
    bool pinned = false;
    Clock::time_point created = Clock::now();
    bool Unreferenced() const {
      return local == 0 && submitted == 0 && borrowers.empty() && !pinned;
    }
  };
  using Map = std::unordered_map<ObjectId, Entry>;

  // Erases `it` if unreferenced, recording the id in `freed`.
  void EraseIfUnreferenced(Map::iterator it, std::vector<ObjectId>* freed) FERRY_REQUIRES(mu_);
  // Calls on_free for each id. Must be called without the lock.
  void RunOnFree(const std::vector<ObjectId>& freed) FERRY_EXCLUDES(mu_);

  const FreeCallback on_free_;

  mutable Mutex mu_;
  Map entries_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::object
