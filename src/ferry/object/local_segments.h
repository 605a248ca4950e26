// LocalSegments: a producer's table ObjectId -> the shared-memory segment
// holding that object's bytes.
//
// Lifecycle: WriteValue (or PendingValue::Commit) Puts a segment when it
// publishes a value; the segment must stay alive, with the same descriptor,
// for as long as any reader may open the location — until the owner frees
// the object, when Free hands it back to the SegmentPool (which reuses it only
// after every reader is gone). Clear and the destructor return everything.
//
// THREAD CONTRACT: thread-safe. The pool outlives this table. Segments go
// back to the pool outside this table's lock.
//
//   SegmentPool pool(Config::Get().shm_pool_bytes);
//   LocalSegments segments(pool);
//   FERRY_ASSIGN_OR_RETURN(auto value, WriteValue(id, "raw", data, {}, segments, pool, limit));
//   ...                                          // readers open value.shm()
//   segments.Free(id);                           // on FreeObjects from the owner
#pragma once

#include <cstddef>
#include <memory>
#include <unordered_map>

#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/object/segment_pool.h"
#include "ferry/object/shm_segment.h"
#include "ferry/status.h"

namespace ferry::object {

class LocalSegments {
 public:
  explicit LocalSegments(SegmentPool& pool) : pool_(pool) {}
  ~LocalSegments();
  LocalSegments(const LocalSegments&) = delete;
  LocalSegments& operator=(const LocalSegments&) = delete;

  // Registers `segment` as holding `id`'s bytes. AlreadyExists if `id` has
  // one (the new segment then goes back to the pool; the old one stays).
  Status Put(const ObjectId& id, std::unique_ptr<ShmSegment> segment) FERRY_EXCLUDES(mu_);

  // Returns `id`'s segment to the pool. No-op for an unknown id.
  void Free(const ObjectId& id) FERRY_EXCLUDES(mu_);

  bool Contains(const ObjectId& id) const FERRY_EXCLUDES(mu_);
  size_t Size() const FERRY_EXCLUDES(mu_);
  // The bytes of every segment held (`ferry status`).
  uint64_t Bytes() const FERRY_EXCLUDES(mu_);

  // Returns every segment to the pool.
  void Clear() FERRY_EXCLUDES(mu_);

 private:
  SegmentPool& pool_;

  mutable Mutex mu_;
  std::unordered_map<ObjectId, std::unique_ptr<ShmSegment>> segments_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::object
