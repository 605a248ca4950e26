#include "ferry/tensor/cpu_allocator.h"

#include <sys/mman.h>

#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ferry/common/config.h"
#include "ferry/common/thread_annotations.h"

namespace ferry::tensor {
namespace {

constexpr uint64_t kSmallClassLimit = 4096;
// Larger requests cannot be satisfied on any machine we run on; refusing them
// early also keeps the size arithmetic below free of overflow.
constexpr uint64_t kMaxBlockBytes = uint64_t{1} << 46;

// Maps a block of `size` bytes (a size class). Returns nullptr on failure.
void* MapBlock(uint64_t size) {
  if (size < CpuAllocator::kHugePageBytes) {
    return std::aligned_alloc(CpuAllocator::kAlignment, size);
  }
  // Over-map by one huge page and trim, so the block starts on a 2 MiB
  // boundary and the kernel can back it with huge pages.
  const uint64_t huge = CpuAllocator::kHugePageBytes;
  const uint64_t len = size + huge;
  void* raw = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + huge - 1) & ~(huge - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t tail = start + len - (aligned + size);
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + size), tail);
  void* block = reinterpret_cast<void*>(aligned);
  // Advisory: without transparent huge pages the block still works, slower.
  (void)madvise(block, size, MADV_HUGEPAGE);
  return block;
}

void UnmapBlock(void* block, uint64_t size) {
  if (size < CpuAllocator::kHugePageBytes) {
    std::free(block);
  } else {
    munmap(block, size);
  }
}

struct FreeBlock {
  void* data;
  uint64_t size;
};

void UnmapAll(const std::vector<FreeBlock>& blocks) {
  for (const FreeBlock& b : blocks) UnmapBlock(b.data, b.size);
}

}  // namespace

// The free lists. Shared (shared_ptr) by the allocator and every outstanding
// block's deleter, so a block released after the allocator died still finds
// a live pool. Thread-safe; memory is unmapped outside mu_.
class CpuAllocator::Pool {
 public:
  explicit Pool(uint64_t max_pooled_bytes) : max_pooled_bytes_(max_pooled_bytes) {}
  ~Pool() { UnmapAll(TakeAll()); }

  // A pooled block of exactly `size` bytes, or nullptr. Counts a hit or miss.
  void* Take(uint64_t size) FERRY_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    auto it = free_.find(size);
    if (it == free_.end() || it->second.empty()) {
      ++misses_;
      return nullptr;
    }
    void* block = it->second.back();
    it->second.pop_back();
    pooled_bytes_ -= size;
    ++hits_;
    return block;
  }

  // Called by a block's deleter on whichever thread released it last.
  void Return(void* block, uint64_t size) FERRY_EXCLUDES(mu_) {
    {
      MutexLock lock(mu_);
      if (!closed_ && pooled_bytes_ + size <= max_pooled_bytes_) {
        free_[size].push_back(block);
        pooled_bytes_ += size;
        return;
      }
    }
    UnmapBlock(block, size);
  }

  // Removes every pooled block; the caller unmaps them outside the lock.
  std::vector<FreeBlock> TakeAll() FERRY_EXCLUDES(mu_) {
    std::vector<FreeBlock> out;
    MutexLock lock(mu_);
    for (auto& [size, blocks] : free_) {
      for (void* b : blocks) out.push_back({b, size});
    }
    free_.clear();
    pooled_bytes_ = 0;
    return out;
  }

  // From now on released blocks are unmapped, not pooled.
  void Close() FERRY_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    closed_ = true;
  }

  Stats GetStats() FERRY_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    Stats s;
    s.hits = hits_;
    s.misses = misses_;
    s.pooled_bytes = pooled_bytes_;
    for (const auto& [size, blocks] : free_) s.pooled_blocks += blocks.size();
    return s;
  }

  const uint64_t max_pooled_bytes_;

 private:
  Mutex mu_;
  std::unordered_map<uint64_t, std::vector<void*>> free_ FERRY_GUARDED_BY(mu_);
  uint64_t pooled_bytes_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t hits_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t misses_ FERRY_GUARDED_BY(mu_) = 0;
  bool closed_ FERRY_GUARDED_BY(mu_) = false;
};

uint64_t CpuAllocator::MaxPooledBytesFromEnv() {
  const int64_t v = EnvInt("FERRY_RECV_POOL_BYTES", static_cast<int64_t>(kDefaultMaxPooledBytes));
  return v < 0 ? 0 : static_cast<uint64_t>(v);
}

uint64_t CpuAllocator::SizeClass(uint64_t nbytes) {
  if (nbytes <= kSmallClassLimit) {
    const uint64_t n = nbytes == 0 ? 1 : nbytes;
    return (n + kAlignment - 1) / kAlignment * kAlignment;
  }
  // 2^k < nbytes <= 2^(k+1): steps of 2^k / 4.
  const int k = std::bit_width(nbytes - 1) - 1;
  const uint64_t step = (uint64_t{1} << k) / 4;
  return (nbytes + step - 1) / step * step;
}

CpuAllocator::CpuAllocator(uint64_t max_pooled_bytes)
    : pool_(std::make_shared<Pool>(max_pooled_bytes)) {}

CpuAllocator::~CpuAllocator() {
  pool_->Close();
  UnmapAll(pool_->TakeAll());
}

StatusOr<std::shared_ptr<void>> CpuAllocator::Allocate(uint64_t nbytes, void** data, bool* pooled) {
  if (data == nullptr)
    return Status::InvalidArgument("CpuAllocator::Allocate: data must not be null");
  if (nbytes > kMaxBlockBytes) {
    return Status::ResourceExhausted("CpuAllocator::Allocate: " + std::to_string(nbytes) +
                                     " bytes is more than one receive buffer may hold");
  }
  const uint64_t size = SizeClass(nbytes);
  void* block = pool_->Take(size);
  if (pooled != nullptr) *pooled = block != nullptr;
  if (block == nullptr) {
    block = MapBlock(size);
    if (block == nullptr) {
      return Status::ResourceExhausted("CpuAllocator::Allocate: out of memory mapping " +
                                       std::to_string(size) + " bytes (" + std::strerror(errno) +
                                       ")");
    }
  }
  *data = block;
  return std::shared_ptr<void>(block, [pool = pool_, size](void* b) { pool->Return(b, size); });
}

Status CpuAllocator::Warm(uint64_t nbytes, int count) {
  std::vector<std::shared_ptr<void>> blocks;
  for (int i = 0; i < count; ++i) {
    void* data = nullptr;
    FERRY_ASSIGN_OR_RETURN(std::shared_ptr<void> block, Allocate(nbytes, &data));
    std::memset(data, 0, SizeClass(nbytes));  // fault every page in now
    blocks.push_back(std::move(block));
  }
  return Status::Ok();  // `blocks` return to the pool here
}

void CpuAllocator::Trim() { UnmapAll(pool_->TakeAll()); }

CpuAllocator::Stats CpuAllocator::GetStats() const { return pool_->GetStats(); }

uint64_t CpuAllocator::max_pooled_bytes() const { return pool_->max_pooled_bytes_; }

}  // namespace ferry::tensor
