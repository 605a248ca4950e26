// ShmTransport: the "shm" OneSidedTransport. Moves CPU tensors between
// processes of one host with exactly one copy: the consumer copies straight
// from the producer's memory into its own buffer; the producer's threads take
// no part. Create it through CreateShmTransport (factory.h).
//
// Endpoint: the producer process's identity — its pid, its start time (so a
// reused pid is never mistaken for it) and the host's boot id (so an endpoint
// from another host is recognized and refused with a pointer to "nixl").
//
// Descriptors, one per exported buffer, of two kinds:
//   ARENA  the buffer lies in a ShmArena block: {memfd number in the
//          producer, inode, offset in the block, length}. The consumer opens
//          /proc/<pid>/fd/<fd>, checks the inode, maps the whole block
//          read-only and memcpys. Mappings are cached (LRU bounded by bytes),
//          so a steady stream of pulls of the same buffers neither remaps nor
//          refaults: ~0.9x a warm same-process memcpy at 256 MiB.
//   VM     any other memory: {address, length}, pulled with process_vm_readv
//          (still one copy, about half the speed).
// Export registers nothing and Release has nothing to undo: the caller keeps
// the memory valid between them, as OneSidedTransport requires.
//
// A Pull verifies, after copying, that every producer it read from is still
// the same live process (a poll of a cached pidfd, immune to pid reuse);
// otherwise the bytes may be torn and it fails with Unavailable. Mappings of
// a producer that died are dropped then; mappings of blocks a live producer
// freed and closed are dropped by a sweep (ShmTransportOptions::
// sweep_interval), run by a helper thread that exists while mappings are
// cached, so a consumer that stops pulling does not pin freed memory.
// Between a free and the next sweep a pull of the freed buffer would read
// the old bytes: pulling a released buffer is a protocol error the transport
// does not promise to catch (a freed block that went to the producer's pool
// could not be told apart anyway).
//
// Lifecycle: the destructor stops the sweeper thread and unmaps the cache.
//
// THREAD CONTRACT: thread-safe; Export, Release, Pull and GetStats may run
// concurrently from any threads. Pull copies on the calling thread, item by
// item; concurrent Pulls share the mapping cache. The sweeper thread runs no
// user code.
//
//   ShmTransport shm;                                   // producer
//   FERRY_ASSIGN_OR_RETURN(ExportedBuffers e, shm.Export({{data, n}}));
//   ...                                                 // consumer
//   PullItem item{e.endpoint, e.descriptors[0], {dst, n}};
//   FERRY_RETURN_IF_ERROR(shm.Pull({&item, 1}, Deadline::After(60s)));
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>

#include "ferry/common/clock.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/transport/one_sided_transport.h"
#include "ferry/transport/shm/factory.h"
#include "ferry/transport/shm/shm_arena.h"

namespace ferry::transport {

struct ShmTransportOptions {
  // FERRY_SHM_MAP_CACHE_BYTES: address space of producers' blocks kept mapped
  // between pulls. Default 4 GiB. A block larger than this is mapped for its
  // pull only.
  uint64_t map_cache_bytes = kDefaultMapCacheBytes;
  // How often the sweeper looks for cached mappings whose producer exited or
  // closed the block (one stat of /proc/<pid>/fd/<fd> each) and drops them.
  // Zero: no sweeper thread; every Pull sweeps first instead.
  std::chrono::milliseconds sweep_interval{1000};
  // Where Export looks for ARENA buffers; null means ShmArena::Global().
  // Not owned; must outlive the transport.
  const ShmArena* arena = nullptr;

  static constexpr uint64_t kDefaultMapCacheBytes = uint64_t{4} << 30;
  static ShmTransportOptions FromEnv();
};

// The identity an endpoint carries. Exposed for tests and diagnostics.
struct ShmEndpoint {
  std::string boot_id;
  pid_t pid = 0;
  uint64_t start_time = 0;  // clock ticks after boot (/proc/<pid>/stat field 22)

  std::string Encode() const;
  static StatusOr<ShmEndpoint> Decode(std::string_view endpoint);
  // This process, now (recomputed after fork).
  static StatusOr<ShmEndpoint> Self();
};

class ShmTransport final : public OneSidedTransport {
 public:
  struct Stats {
    uint64_t cached_mappings = 0;
    uint64_t mapped_bytes = 0;      // address space of cached mappings
    uint64_t map_hits = 0;          // ARENA items served by a cached mapping
    uint64_t map_misses = 0;        // ARENA items that opened and mapped a block
    uint64_t evictions = 0;         // mappings dropped (LRU bound, stale, dead producer)
    uint64_t arena_items = 0;       // items pulled, by kind
    uint64_t vm_items = 0;
    uint64_t arena_bytes = 0;       // bytes pulled, by kind
    uint64_t vm_bytes = 0;
  };

  explicit ShmTransport(ShmTransportOptions options = ShmTransportOptions::FromEnv());
  ~ShmTransport() override;

  const std::string& name() const override { return name_; }
  StatusOr<ExportedBuffers> Export(const std::vector<BufferView>& buffers) override;
  // Nothing to undo: Export registers nothing.
  void Release(const std::vector<BufferView>& buffers) override {}
  Status Pull(std::span<const PullItem> items, Deadline deadline) override;

  Stats GetStats() const;
  // Unmaps every cached mapping (in-flight pulls keep theirs until done).
  void DropMappings();

 private:
  struct Mapping;  // one producer block mapped read-only here
  struct ParsedItem;
  struct ProducerHandle;  // a pidfd of one producer process
  // (pid, start time, inode)
  using MappingKey = std::tuple<pid_t, uint64_t, uint64_t>;

  // The cached mapping of a producer's block, or a new one (cached if it
  // fits the bound). Unavailable if the producer has exited or no longer
  // holds that block.
  StatusOr<std::shared_ptr<const Mapping>> GetMapping(const ParsedItem& item) FERRY_EXCLUDES(mu_);
  Status PullArena(const ParsedItem& item, Deadline deadline) FERRY_EXCLUDES(mu_);
  Status PullVm(const ParsedItem& item, Deadline deadline);
  // True if `pid` is still the live process that started at `start_time`.
  bool ProducerAlive(pid_t pid, uint64_t start_time) FERRY_EXCLUDES(mu_);
  // Drops cached mappings whose producer is gone or closed the block; runs
  // at most once per sweep_interval.
  void MaybeSweep() FERRY_EXCLUDES(mu_);
  // Starts the sweeper thread unless it runs or is not wanted.
  void StartSweeperLocked() FERRY_REQUIRES(mu_);
  void SweeperLoop() FERRY_EXCLUDES(mu_);
  // Drops every cached mapping and the pidfd of one producer process.
  void DropProducer(pid_t pid, uint64_t start_time) FERRY_EXCLUDES(mu_);
  void EvictLocked(MappingKey key, std::vector<std::shared_ptr<const Mapping>>* dropped) FERRY_REQUIRES(mu_);

  // Const after construction.
  const std::string name_ = "shm";
  const ShmTransportOptions options_;
  const ShmArena& arena_;

  mutable Mutex mu_;
  // Most recently used first.
  std::list<MappingKey> lru_ FERRY_GUARDED_BY(mu_);
  struct CacheEntry {
    std::shared_ptr<const Mapping> mapping;
    std::list<MappingKey>::iterator lru;
  };
  std::map<MappingKey, CacheEntry> cache_ FERRY_GUARDED_BY(mu_);
  uint64_t mapped_bytes_ FERRY_GUARDED_BY(mu_) = 0;
  Clock::time_point next_sweep_ FERRY_GUARDED_BY(mu_);
  bool sweeping_ FERRY_GUARDED_BY(mu_) = false;
  Stats stats_ FERRY_GUARDED_BY(mu_);
  // Pidfds of producers pulled from, by (pid, start time); bounded.
  std::map<std::pair<pid_t, uint64_t>, std::shared_ptr<const ProducerHandle>> producers_ FERRY_GUARDED_BY(mu_);
  // The sweeper: started with the first cached mapping, by process
  // `sweeper_pid_` (a fork()ed child must not join its parent's thread).
  std::thread sweeper_ FERRY_GUARDED_BY(mu_);
  pid_t sweeper_pid_ FERRY_GUARDED_BY(mu_) = 0;
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
  std::condition_variable sweeper_cv_;
  // The endpoint Export hands out, for the pid it was made in.
  pid_t self_pid_ FERRY_GUARDED_BY(mu_) = 0;
  std::string self_endpoint_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::transport
