// CpuAllocator: receive buffers for incoming tensors, pooled by size class.
//
// A transport that receives a tensor into CPU memory asks for a buffer here;
// the buffer becomes a ferry::tensor::Tensor and, through DLPack, a torch or
// numpy tensor. Fresh pages cost ~10 µs each to fault in (~0.3 GB/s), so
// freed blocks go back to a pool and are reused by size class; blocks of
// 2 MiB and more are 2 MiB-aligned and madvise(MADV_HUGEPAGE)d, which lifts
// fresh memory to 7–8 GB/s. All blocks are 64-byte aligned.
//
// Lifecycle: a block returns to the pool when the last copy of the
// shared_ptr that Allocate returned dies. The pool is shared by the allocator
// and every outstanding block, so blocks may outlive the allocator: after the
// allocator is destroyed, returning blocks are freed instead of pooled. The
// pool holds at most `max_pooled_bytes`; beyond that, returning blocks are
// freed.
//
// THREAD CONTRACT: thread-safe. Allocate, Warm, Trim and GetStats may be called
// from any thread; blocks may be released on any thread. No callback runs.
//
//   CpuAllocator alloc;                          // pool bound from env
//   void* data = nullptr;
//   FERRY_ASSIGN_OR_RETURN(std::shared_ptr<void> block, alloc.Allocate(n, &data));
//   recv_into(data, n);                          // block keeps `data` alive
//   block.reset();                               // back to the pool
#pragma once

#include <cstdint>
#include <memory>

#include "ferry/status.h"

namespace ferry::tensor {

class CpuAllocator {
 public:
  // FERRY_RECV_POOL_BYTES: the most bytes of freed receive buffers kept for
  // reuse per allocator. Default 1 GiB.
  static constexpr uint64_t kDefaultMaxPooledBytes = uint64_t{1} << 30;
  static uint64_t MaxPooledBytesFromEnv();

  // Every block is aligned to at least this.
  static constexpr uint64_t kAlignment = 64;
  // Blocks of at least this size are 2 MiB-aligned and use huge pages.
  static constexpr uint64_t kHugePageBytes = uint64_t{2} << 20;

  struct Stats {
    uint64_t hits = 0;          // Allocate calls served from the pool
    uint64_t misses = 0;        // Allocate calls that mapped fresh memory
    uint64_t pooled_bytes = 0;  // bytes of free blocks held for reuse now
    uint64_t pooled_blocks = 0;
  };

  explicit CpuAllocator(uint64_t max_pooled_bytes = MaxPooledBytesFromEnv());
  // Frees the pooled blocks; outstanding blocks stay valid and are freed when
  // released.
  ~CpuAllocator();
  CpuAllocator(const CpuAllocator&) = delete;
  CpuAllocator& operator=(const CpuAllocator&) = delete;

  // Returns a block of at least `nbytes` bytes (nbytes == 0 gives a small
  // non-null block) and stores its address in `*data`. The memory is not
  // zeroed. `*pooled` (if given) tells whether the block came from the pool
  // (warm) rather than fresh memory. ResourceExhausted if the system has no
  // memory left.
  StatusOr<std::shared_ptr<void>> Allocate(uint64_t nbytes, void** data, bool* pooled = nullptr);

  // Pre-faults `count` blocks of `nbytes` bytes and leaves them in the pool
  // (within the bound), so the first receives of that size run at warm speed.
  Status Warm(uint64_t nbytes, int count = 1);

  // Frees every pooled block.
  void Trim();

  Stats GetStats() const;
  uint64_t max_pooled_bytes() const;

  // The size Allocate actually reserves for `nbytes`: 64-byte steps up to
  // 4 KiB, then four classes per power of two (at most 25% waste). Exposed
  // for tests.
  static uint64_t SizeClass(uint64_t nbytes);

  class Pool;  // shared between the allocator and outstanding blocks

 private:
  std::shared_ptr<Pool> pool_;
};

}  // namespace ferry::tensor
