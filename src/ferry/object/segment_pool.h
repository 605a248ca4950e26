// SegmentPool: a producer's cache of freed shared-memory segments, kept warm
// for reuse.
//
// Why: the first touch of a fresh shared page costs ~10 µs (~0.3 GB/s; shmem
// huge pages are off on these kernels), ~50x slower than writing a page
// already faulted in. A segment whose object was freed goes back here
// (Release) and a later value of similar size reuses it (Acquire) — but only
// once every reader's ShmMapping of it is gone, which the pool checks with
// a non-blocking exclusive flock on its own descriptor (readers hold shared
// ones). A reader that still maps old bytes therefore never sees them change.
//
// Lifecycle: construct with a byte budget; Release keeps segments while the
// pooled capacity stays within it, evicting the oldest first; the destructor
// frees whatever is pooled. Segments handed out by Acquire belong to the
// caller and outlive nothing here.
//
// THREAD CONTRACT: thread-safe. No callbacks. Segments are unmapped outside
// the lock.
//
//   SegmentPool pool(Config::Get().shm_pool_bytes);
//   FERRY_ASSIGN_OR_RETURN(std::unique_ptr<ShmSegment> seg, pool.Acquire(256 << 20));
//   Write(seg->data());  ...publish seg->Location(n)...
//   pool.Release(std::move(seg));                 // when the object is freed
//   auto again = pool.Acquire(200 << 20);          // same pages, if no reader maps them
#pragma once

#include <cstdint>
#include <list>
#include <memory>

#include "ferry/common/thread_annotations.h"
#include "ferry/object/shm_segment.h"
#include "ferry/status.h"

namespace ferry::object {

class SegmentPool {
 public:
  struct Stats {
    int64_t pooled_bytes = 0;  // capacity of the segments held now
    size_t pooled_segments = 0;
    uint64_t hits = 0;       // Acquire served from the pool
    uint64_t misses = 0;     // Acquire created a new segment
    uint64_t evictions = 0;  // segments dropped to stay within budget
  };

  // Capacity of a new segment for `size` bytes: a multiple of 64 KiB up to
  // 2 MiB, a multiple of 2 MiB above.
  static uint64_t RoundCapacity(uint64_t size);

  // `max_pooled_bytes` <= 0 disables pooling (Release frees at once).
  explicit SegmentPool(int64_t max_pooled_bytes);
  ~SegmentPool();
  SegmentPool(const SegmentPool&) = delete;
  SegmentPool& operator=(const SegmentPool&) = delete;

  // A segment of capacity >= `size` (> 0): the smallest pooled one no larger
  // than max(2 * size, RoundCapacity(size)) that no reader maps any more, or
  // else a new one of RoundCapacity(size). A reused segment holds stale bytes.
  StatusOr<std::unique_ptr<ShmSegment>> Acquire(uint64_t size) FERRY_EXCLUDES(mu_);

  // Takes back a segment whose object was freed. Readers may still map it;
  // it is reused only after they are gone. Null is ignored.
  void Release(std::unique_ptr<ShmSegment> segment) FERRY_EXCLUDES(mu_);

  // Frees every pooled segment.
  void Clear() FERRY_EXCLUDES(mu_);

  Stats GetStats() const FERRY_EXCLUDES(mu_);
  int64_t max_pooled_bytes() const { return max_pooled_bytes_; }

 private:
  const int64_t max_pooled_bytes_;

  mutable Mutex mu_;
  // Oldest release first.
  std::list<std::unique_ptr<ShmSegment>> pooled_ FERRY_GUARDED_BY(mu_);
  Stats stats_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::object
