// ShmArena: an allocator of CPU memory that other processes on this host can
// map. Every block is its own memfd (MFD_CLOEXEC, named "ferry-arena"; nothing
// appears in /dev/shm), mapped MAP_SHARED read-write here. A consumer opens
// /proc/<pid>/fd/<fd> and maps the same pages, so a pull is one memcpy from
// the producer's memory into the consumer's buffer (see ShmTransport).
//
// Blocks are sized by class (SizeClass). Freed blocks stay mapped and faulted
// in and go back to a per-class pool for reuse, because touching fresh shared
// pages costs ~10 µs per 4 KiB (~0.3-1 GB/s); beyond the pool bound they are
// unmapped and closed. Every live or pooled block holds one descriptor, so
// the arena also keeps to a descriptor budget: at the budget it closes pooled
// blocks first and then refuses (ResourceExhausted; the torch allocator then
// falls back to ordinary memory).
//
// Lifecycle: Global() is the process-wide arena; it is never destroyed,
// because torch may free tensors into it while the process exits. Other
// instances (tests) unmap their pooled blocks on destruction and must outlive
// their live blocks.
//
// fork(): a child inherits the blocks, which stay shared with the parent (not
// copy-on-write). In the child the arena forgets its pool and never reuses an
// inherited block: freeing one there only unmaps the child's view. The parent
// keeps reusing its freed blocks, so a child must not keep using a tensor the
// parent frees (see README.md).
//
// THREAD CONTRACT: thread-safe. Every method may be called from any thread;
// system calls that map, unmap or close run outside the lock.
//
//   ShmArena& arena = ShmArena::Global();
//   FERRY_ASSIGN_OR_RETURN(void* data, arena.Allocate(64 << 20));
//   Fill(data);
//   std::optional<ShmArena::Block> b = arena.Find(data + 100);  // fd, inode, base
//   arena.Free(data);                                           // back to the pool
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "ferry/common/thread_annotations.h"
#include "ferry/status.h"

namespace ferry::transport {

// The memfd name of every arena block; consumers check that a descriptor
// they open carries it.
inline constexpr const char kArenaMemfdName[] = "ferry-arena";

class ShmArena {
 public:
  // A live block, as Find reports it. `fd` stays open (and `inode` names the
  // memfd) until the block is freed and leaves the pool.
  struct Block {
    int fd = -1;
    uint64_t inode = 0;
    void* base = nullptr;
    uint64_t capacity = 0;  // bytes mapped at `base`; the memfd's size
  };

  struct Options {
    // FERRY_SHM_ARENA_POOL_BYTES: the most bytes of freed blocks kept mapped
    // for reuse. Default 1 GiB.
    uint64_t max_pooled_bytes = kDefaultMaxPooledBytes;
    // FERRY_SHM_ARENA_MAX_FDS: the most memfds (live and pooled blocks) the
    // arena holds open. Default half the soft RLIMIT_NOFILE, so the arena
    // never takes the descriptors sockets and files need.
    uint64_t max_fds = 512;  // OptionsFromEnv sets the default above
  };

  struct Stats {
    uint64_t live_blocks = 0;
    uint64_t live_bytes = 0;  // capacity of live blocks
    uint64_t pooled_blocks = 0;
    uint64_t pooled_bytes = 0;
    uint64_t hits = 0;             // Allocate calls served from the pool
    uint64_t misses = 0;           // Allocate calls that made a new memfd
    uint64_t released_blocks = 0;  // freed blocks unmapped and closed
  };

  static constexpr uint64_t kDefaultMaxPooledBytes = uint64_t{1} << 30;
  // Blocks are page-aligned and whole pages long.
  static constexpr uint64_t kPageBytes = 4096;

  static Options OptionsFromEnv();

  // The process-wide arena (options from the environment at first use).
  static ShmArena& Global();

  explicit ShmArena(Options options = OptionsFromEnv());
  // Unmaps pooled blocks. Live blocks must have been freed.
  ~ShmArena();
  ShmArena(const ShmArena&) = delete;
  ShmArena& operator=(const ShmArena&) = delete;

  // A page-aligned block of SizeClass(nbytes) bytes (nbytes == 0 gives one
  // page), not zeroed when it comes from the pool. ResourceExhausted when the
  // system or the descriptor budget has no room.
  StatusOr<void*> Allocate(uint64_t nbytes);

  // Returns a block to the pool, or unmaps and closes it when the pool is
  // full. `p` must be what Allocate returned and not yet freed; nullptr is
  // ignored.
  void Free(void* p);

  // The live block containing `p` (any address inside it), if any.
  std::optional<Block> Find(const void* p) const;

  // Unmaps and closes every pooled block.
  void Trim();

  Stats GetStats() const;
  const Options& options() const { return options_; }

  // The capacity Allocate reserves for `nbytes`: whole pages up to 16 KiB,
  // then four classes per power of two (at most 25% waste).
  static uint64_t SizeClass(uint64_t nbytes);

 private:
  struct Record {
    int fd = -1;
    uint64_t inode = 0;
    uint64_t capacity = 0;
    bool inherited = false;  // mapped by the parent before a fork
  };
  struct Pooled {
    void* base = nullptr;
    Record record;
  };

  // fork() handlers (pthread_atfork, registered once for every arena).
  friend struct ArenaForkRegistry;
  void LockForFork() FERRY_ACQUIRE(mu_);
  void UnlockInParent() FERRY_RELEASE(mu_);
  void ResetInChild() FERRY_RELEASE(mu_);

  // Takes one pooled block of any class out of the pool (for the descriptor
  // budget); false if the pool is empty.
  bool EvictOnePooled(Pooled* out) FERRY_REQUIRES(mu_);

  // Const after construction.
  const Options options_;

  mutable Mutex mu_;
  std::map<uintptr_t, Record> live_ FERRY_GUARDED_BY(mu_);                        // by base address
  std::unordered_map<uint64_t, std::vector<Pooled>> pool_ FERRY_GUARDED_BY(mu_);  // by capacity
  uint64_t live_bytes_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t pooled_bytes_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t pooled_blocks_ FERRY_GUARDED_BY(mu_) = 0;
  // Descriptors held plus those being made by Allocate calls in flight.
  uint64_t fds_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t hits_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t misses_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t released_ FERRY_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry::transport
