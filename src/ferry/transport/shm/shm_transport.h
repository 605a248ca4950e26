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

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/transport/one_sided_transport.h"
#include "ferry/transport/shm/factory.h"
#include "ferry/transport/shm/shm_arena.h"

namespace ferry::transport {

namespace shm_internal {
class MappingCache;
class ProducerTable;
struct ParsedItem;
}  // namespace shm_internal

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
    uint64_t mapped_bytes = 0;  // address space of cached mappings
    uint64_t map_hits = 0;      // ARENA items served by a cached mapping
    uint64_t map_misses = 0;    // ARENA items that opened and mapped a block
    uint64_t evictions = 0;     // mappings dropped (LRU bound, stale, dead producer)
    uint64_t arena_items = 0;   // items pulled, by kind
    uint64_t vm_items = 0;
    uint64_t arena_bytes = 0;  // bytes pulled, by kind
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
  Status PullArena(const shm_internal::ParsedItem& item, Deadline deadline);
  Status PullVm(const shm_internal::ParsedItem& item, Deadline deadline);

  // Const after construction.
  const std::string name_ = "shm";
  const ShmTransportOptions options_;
  const ShmArena& arena_;

  // Own synchronization. The pidfds of producers pulled from, and the cache
  // of mappings of their blocks, whose sweeper checks them: producers_ is
  // declared first so that it outlives cache_.
  const std::unique_ptr<shm_internal::ProducerTable> producers_;
  const std::unique_ptr<shm_internal::MappingCache> cache_;

  mutable Mutex mu_;
  // Items and bytes pulled; the mapping figures come from cache_.
  Stats stats_ FERRY_GUARDED_BY(mu_);
  // The endpoint Export hands out, for the pid it was made in.
  pid_t self_pid_ FERRY_GUARDED_BY(mu_) = 0;
  std::string self_endpoint_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::transport
