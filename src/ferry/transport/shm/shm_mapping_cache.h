// MappingCache: the consumer side's read-only mappings of producers' arena
// blocks, internal to the shm backend. Opening /proc/<pid>/fd/<fd> and
// mapping a block costs far more than copying a small buffer, and a fresh
// mapping refaults every page, so mappings are kept between pulls in an LRU
// keyed by (pid, start time, inode) and bounded by the address space they
// take (max_bytes). A block larger than the bound is mapped for its pull
// only.
//
// A cache hit is not re-validated (a stat of /proc/<pid>/fd/<fd> costs
// ~6 µs). Instead a sweep, at most once per sweep_interval, drops the
// mappings of producers that died and of blocks a live producer closed; a
// sweeper thread runs it from the first cached mapping on, so a consumer
// that stops pulling does not pin freed memory. With a zero interval there
// is no thread and the owner calls MaybeSweep itself.
//
// Lifecycle: the destructor stops the sweeper thread (after a fork() the
// child only forgets its parent's) and unmaps the cache; in-flight users
// keep their Mapping until they let go of it.
//
// THREAD CONTRACT: thread-safe. Every method may be called from any thread;
// open, mmap and munmap run outside the lock. The lock is held while
// calling the ProducerTable, which takes only its own lock. The sweeper
// thread runs no user code.
//
//   ProducerTable producers;
//   MappingCache cache(uint64_t{4} << 30, std::chrono::seconds(1), &producers);
//   FERRY_ASSIGN_OR_RETURN(std::shared_ptr<const Mapping> m, cache.Get(item));
//   std::memcpy(dst, m->data + item.offset, item.length);
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <thread>
#include <tuple>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/status.h"
#include "ferry/transport/shm/shm_descriptor.h"
#include "ferry/transport/shm/shm_producer.h"

namespace ferry::transport::shm_internal {

// One producer block mapped read-only here; unmapped when the last
// shared_ptr to it goes.
struct Mapping {
  Mapping(const uint8_t* data, uint64_t size, dev_t dev, int32_t producer_fd)
      : data(data), size(size), dev(dev), producer_fd(producer_fd) {}
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  // True if `pid` still has this memfd open as `producer_fd`: one stat of
  // /proc/<pid>/fd/<fd> (~6 µs), no open.
  bool HeldBy(pid_t pid, uint64_t inode) const;

  const uint8_t* const data;
  const uint64_t size;
  const dev_t dev;  // with the inode, identifies the memfd
  const int32_t producer_fd;
};

class MappingCache {
 public:
  struct Stats {
    uint64_t cached_mappings = 0;
    uint64_t mapped_bytes = 0;  // address space of cached mappings
    uint64_t hits = 0;          // Gets served by a cached mapping
    uint64_t misses = 0;        // Gets that opened and mapped a block
    uint64_t evictions = 0;     // mappings dropped (LRU bound, stale, dead producer)
  };

  // `producers` is not owned and must outlive the cache; the sweep checks
  // and forgets producers through it. A sweep_interval of zero or less
  // means no sweeper thread.
  MappingCache(uint64_t max_bytes, std::chrono::milliseconds sweep_interval,
               ProducerTable* producers);
  ~MappingCache();
  MappingCache(const MappingCache&) = delete;
  MappingCache& operator=(const MappingCache&) = delete;

  // The cached mapping of an ARENA item's block, or a new one (cached if it
  // fits the bound). Unavailable if the producer has exited or no longer
  // holds that block; InvalidArgument if the descriptor names something
  // other than an arena block.
  StatusOr<std::shared_ptr<const Mapping>> Get(const ParsedItem& item) FERRY_EXCLUDES(mu_);
  // Drops every cached mapping and the pidfd of one producer process.
  void DropProducer(pid_t pid, uint64_t start_time) FERRY_EXCLUDES(mu_);
  // Drops cached mappings whose producer is gone or closed the block; runs
  // at most once per sweep_interval.
  void MaybeSweep() FERRY_EXCLUDES(mu_);
  // Unmaps every cached mapping (in-flight users keep theirs until done).
  void DropAll() FERRY_EXCLUDES(mu_);
  Stats GetStats() const FERRY_EXCLUDES(mu_);

 private:
  // (pid, start time, inode)
  using Key = std::tuple<pid_t, uint64_t, uint64_t>;
  struct Entry {
    std::shared_ptr<const Mapping> mapping;
    std::list<Key>::iterator lru;
  };

  // Starts the sweeper thread unless it runs or is not wanted.
  void StartSweeperLocked() FERRY_REQUIRES(mu_);
  void SweeperLoop() FERRY_EXCLUDES(mu_);
  // Moves the mapping to `dropped`, to be unmapped after the lock.
  void EvictLocked(Key key, std::vector<std::shared_ptr<const Mapping>>* dropped)
      FERRY_REQUIRES(mu_);

  // Const after construction.
  const uint64_t max_bytes_;
  const std::chrono::milliseconds sweep_interval_;
  ProducerTable& producers_;

  mutable Mutex mu_;
  // Most recently used first.
  std::list<Key> lru_ FERRY_GUARDED_BY(mu_);
  std::map<Key, Entry> cache_ FERRY_GUARDED_BY(mu_);
  uint64_t mapped_bytes_ FERRY_GUARDED_BY(mu_) = 0;
  Clock::time_point next_sweep_ FERRY_GUARDED_BY(mu_);
  bool sweeping_ FERRY_GUARDED_BY(mu_) = false;
  Stats stats_ FERRY_GUARDED_BY(mu_);  // hits, misses, evictions
  // The sweeper: started with the first cached mapping, by process
  // `sweeper_pid_` (a fork()ed child must not join its parent's thread).
  std::thread sweeper_ FERRY_GUARDED_BY(mu_);
  pid_t sweeper_pid_ FERRY_GUARDED_BY(mu_) = 0;
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
  std::condition_variable sweeper_cv_;
};

}  // namespace ferry::transport::shm_internal
