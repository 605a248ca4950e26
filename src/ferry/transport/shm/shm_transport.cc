#include "ferry/transport/shm/shm_transport.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "ferry/common/config.h"
#include "ferry/common/stream_copy.h"
#include "ferry/transport/shm/shm_descriptor.h"
#include "ferry/transport/shm/shm_mapping_cache.h"
#include "ferry/transport/shm/shm_producer.h"

namespace ferry::transport {

using shm_internal::DescriptorKind;
using shm_internal::Mapping;
using shm_internal::MappingCache;
using shm_internal::ParsedItem;
using shm_internal::ProducerTable;

namespace {

// Copies and process_vm_readv calls are cut into pieces this large so that a
// deadline is noticed within a few milliseconds.
constexpr uint64_t kChunkBytes = uint64_t{64} << 20;

Status ProducerDied(const ShmEndpoint& ep) {
  return Status::Unavailable("shm transport: the producer process died (pid " +
                             std::to_string(ep.pid) + " is gone or is another process now)");
}

// ---- Copying ----------------------------------------------------------------
//
// Measured here (AMD EPYC, 32 MiB L3, 4 KiB source pages of another
// process's mapping, warm destination): up to ~4 MiB glibc memcpy wins
// (~25 GB/s, everything in cache); from ~8 MiB on, AVX2 streaming stores win
// clearly: 20.7 vs 16.8 GB/s at 8 MiB, 14.5 vs 8.5 at 32 MiB, 15.1 vs 12.1
// at 256 MiB, because glibc only switches to non-temporal stores far above
// the L3 size and in between evicts the source it is about to read.
// rep movsb was no better than memcpy, a software prefetch no better than
// none, and two threads gained only ~20% for twice the CPU. Mapping with
// MAP_POPULATE or MADV_POPULATE_READ made the first pull slower, not faster
// (the copy's own read faults map 16 pages each), so mappings are plain and
// cached instead.
constexpr uint64_t kStreamingBytes = uint64_t{6} << 20;

// One piece of an item; `streaming` is decided once per item by its size.
void CopyPiece(void* dst, const void* src, size_t n, bool streaming) {
  if (streaming) {
    StreamCopy(dst, src, n);
    return;
  }
  std::memcpy(dst, src, n);
}

}  // namespace

// ---- Factory ----------------------------------------------------------------

std::unique_ptr<OneSidedTransport> CreateShmTransport() { return std::make_unique<ShmTransport>(); }

bool IsLocalShmEndpoint(std::string_view endpoint) {
  auto ep = ShmEndpoint::Decode(endpoint);
  return ep.ok() && ep->boot_id == shm_internal::BootId();
}

ShmTransportOptions ShmTransportOptions::FromEnv() {
  ShmTransportOptions o;
  const int64_t bytes = EnvInt("FERRY_SHM_MAP_CACHE_BYTES",
                               static_cast<int64_t>(kDefaultMapCacheBytes));
  o.map_cache_bytes = bytes < 0 ? 0 : static_cast<uint64_t>(bytes);
  return o;
}

// ---- Transport --------------------------------------------------------------

ShmTransport::ShmTransport(ShmTransportOptions options)
    : options_(options),
      arena_(options.arena != nullptr ? *options.arena : ShmArena::Global()),
      producers_(std::make_unique<ProducerTable>()),
      cache_(std::make_unique<MappingCache>(options.map_cache_bytes, options.sweep_interval,
                                            producers_.get())) {}

// cache_ goes first: it stops its sweeper thread and unmaps its mappings.
ShmTransport::~ShmTransport() = default;

StatusOr<ExportedBuffers> ShmTransport::Export(const std::vector<BufferView>& buffers) {
  ExportedBuffers out;
  {
    MutexLock lock(mu_);
    if (self_pid_ != getpid()) {  // first call, or we are a fork()ed child
      FERRY_ASSIGN_OR_RETURN(ShmEndpoint self, ShmEndpoint::Self());
      self_endpoint_ = self.Encode();
      self_pid_ = self.pid;
    }
    out.endpoint = self_endpoint_;
  }
  out.descriptors.reserve(buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    const BufferView& b = buffers[i];
    if (b.nbytes == 0) {
      out.descriptors.push_back(shm_internal::EncodeVmDescriptor(0, 0));
      continue;
    }
    if (b.data == nullptr) {
      return Status::InvalidArgument("shm transport: buffer " + std::to_string(i) + " has " +
                                     std::to_string(b.nbytes) + " bytes at a null address");
    }
    if (std::optional<ShmArena::Block> block = arena_.Find(b.data)) {
      const uint64_t offset = static_cast<uint64_t>(static_cast<const uint8_t*>(b.data) -
                                                    static_cast<const uint8_t*>(block->base));
      if (b.nbytes > block->capacity - offset) {
        return Status::InvalidArgument("shm transport: buffer " + std::to_string(i) + " (" +
                                       std::to_string(b.nbytes) + " bytes at offset " +
                                       std::to_string(offset) + ") runs past its " +
                                       std::to_string(block->capacity) + "-byte arena block");
      }
      out.descriptors.push_back(
          shm_internal::EncodeArenaDescriptor(block->fd, block->inode, offset, b.nbytes));
    } else {
      out.descriptors.push_back(
          shm_internal::EncodeVmDescriptor(reinterpret_cast<uint64_t>(b.data), b.nbytes));
    }
  }
  return out;
}

Status ShmTransport::Pull(std::span<const PullItem> items, Deadline deadline) {
  if (items.empty()) return Status::Ok();
  if (options_.sweep_interval.count() <= 0) cache_->MaybeSweep();  // else the sweeper thread does

  // Check every item before copying any.
  FERRY_ASSIGN_OR_RETURN(std::vector<ParsedItem> parsed, shm_internal::ParsePullItems(items));

  uint64_t arena_items = 0, vm_items = 0, arena_bytes = 0, vm_bytes = 0;
  for (const ParsedItem& p : parsed) {
    if (deadline.Expired()) {
      return Status::DeadlineExceeded("shm transport: pull of " + std::to_string(items.size()) +
                                      " items passed its deadline before item " +
                                      std::to_string(p.index));
    }
    if (p.length == 0) continue;
    Status s = p.kind == DescriptorKind::kArena ? PullArena(p, deadline) : PullVm(p, deadline);
    if (!s.ok()) {
      if (s.code() == StatusCode::kUnavailable &&
          !producers_->Alive(p.endpoint.pid, p.endpoint.start_time)) {
        cache_->DropProducer(p.endpoint.pid, p.endpoint.start_time);
        return ProducerDied(p.endpoint).WithContext("item " + std::to_string(p.index));
      }
      return s;
    }
    if (p.kind == DescriptorKind::kArena) {
      ++arena_items;
      arena_bytes += p.length;
    } else {
      ++vm_items;
      vm_bytes += p.length;
    }
  }

  // A producer that exited (or was killed) mid-copy may have left torn bytes
  // behind (ARENA mappings outlive it): check each one once, after the copy.
  std::vector<shm_internal::ProducerId> producers;
  for (const ParsedItem& p : parsed) producers.emplace_back(p.endpoint.pid, p.endpoint.start_time);
  std::sort(producers.begin(), producers.end());
  producers.erase(std::unique(producers.begin(), producers.end()), producers.end());
  for (const auto& [pid, start] : producers) {
    if (!producers_->Alive(pid, start)) {
      cache_->DropProducer(pid, start);
      ShmEndpoint ep;
      ep.pid = pid;
      return ProducerDied(ep);
    }
  }

  MutexLock lock(mu_);
  stats_.arena_items += arena_items;
  stats_.vm_items += vm_items;
  stats_.arena_bytes += arena_bytes;
  stats_.vm_bytes += vm_bytes;
  return Status::Ok();
}

Status ShmTransport::PullArena(const ParsedItem& item, Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(std::shared_ptr<const Mapping> mapping, cache_->Get(item));
  if (item.offset > mapping->size || item.length > mapping->size - item.offset) {
    return Status::InvalidArgument(item.Where() + ": bytes [" + std::to_string(item.offset) +
                                   ", +" + std::to_string(item.length) + ") run past the " +
                                   std::to_string(mapping->size) + "-byte block");
  }
  const bool streaming = item.length >= kStreamingBytes;
  const uint8_t* src = mapping->data + item.offset;
  uint8_t* dst = static_cast<uint8_t*>(item.dst);
  for (uint64_t done = 0; done < item.length;) {
    if (deadline.Expired()) {
      return Status::DeadlineExceeded(item.Where() + ": deadline passed after " +
                                      std::to_string(done) + " of " + std::to_string(item.length) +
                                      " bytes");
    }
    const uint64_t n = std::min(kChunkBytes, item.length - done);
    CopyPiece(dst + done, src + done, n, streaming);
    done += n;
  }
  return Status::Ok();
}

Status ShmTransport::PullVm(const ParsedItem& item, Deadline deadline) {
  uint8_t* dst = static_cast<uint8_t*>(item.dst);
  for (uint64_t done = 0; done < item.length;) {
    if (deadline.Expired()) {
      return Status::DeadlineExceeded(item.Where() + ": deadline passed after " +
                                      std::to_string(done) + " of " + std::to_string(item.length) +
                                      " bytes");
    }
    const uint64_t n = std::min(kChunkBytes, item.length - done);
    struct iovec local {
      dst + done, n
    };
    struct iovec remote {
      reinterpret_cast<void*>(item.address + done), n
    };
    const ssize_t r = process_vm_readv(item.endpoint.pid, &local, 1, &remote, 1, 0);
    if (r > 0) {
      done += static_cast<uint64_t>(
          r);  // a short read stops at an unmapped page; the next call says why
      continue;
    }
    const int err = r == 0 ? EFAULT : errno;
    if (err == EINTR) continue;
    const std::string range = "[0x" +
                              [](uint64_t v) {
                                char buf[32];
                                auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), v, 16);
                                return std::string(buf, p);
                              }(item.address + done) +
                              ", +" + std::to_string(item.length - done) + ")";
    if (err == ESRCH) {
      return Status::Unavailable(item.Where() + ": the producer process died during the read");
    }
    if (err == EFAULT) {
      return Status::Unavailable(item.Where() + ": it no longer maps " + range +
                                 " (freed?) or the destination is bad");
    }
    if (err == EPERM || err == EACCES) {
      return Status::PermissionDenied(item.Where() + ": process_vm_readv not permitted (" +
                                      std::strerror(err) +
                                      "); producer and consumer must run as the same user");
    }
    if (err == ENOMEM)
      return Status::ResourceExhausted(item.Where() + ": process_vm_readv: " + std::strerror(err));
    return Status::Aborted(item.Where() + ": process_vm_readv of " + range + ": " +
                           std::strerror(err));
  }
  return Status::Ok();
}

ShmTransport::Stats ShmTransport::GetStats() const {
  const MappingCache::Stats cache = cache_->GetStats();
  MutexLock lock(mu_);
  Stats s = stats_;
  s.cached_mappings = cache.cached_mappings;
  s.mapped_bytes = cache.mapped_bytes;
  s.map_hits = cache.hits;
  s.map_misses = cache.misses;
  s.evictions = cache.evictions;
  return s;
}

void ShmTransport::DropMappings() { cache_->DropAll(); }

}  // namespace ferry::transport
