#include "ferry/object/segment_pool.h"

#include <algorithm>
#include <vector>

namespace ferry::object {
namespace {

constexpr uint64_t kSmallGranule = uint64_t{64} << 10;  // 64 KiB
constexpr uint64_t kLargeGranule = uint64_t{2} << 20;   // 2 MiB

uint64_t RoundUp(uint64_t x, uint64_t granule) { return (x + granule - 1) / granule * granule; }

}  // namespace

uint64_t SegmentPool::RoundCapacity(uint64_t size) {
  if (size <= kLargeGranule) return std::max(kSmallGranule, RoundUp(size, kSmallGranule));
  return RoundUp(size, kLargeGranule);
}

SegmentPool::SegmentPool(int64_t max_pooled_bytes) : max_pooled_bytes_(max_pooled_bytes) {}

SegmentPool::~SegmentPool() { Clear(); }

StatusOr<std::unique_ptr<ShmSegment>> SegmentPool::Acquire(uint64_t size) {
  if (size == 0) return Status::InvalidArgument("SegmentPool::Acquire of 0 bytes");
  if (size > UINT64_MAX / 4) {
    return Status::InvalidArgument("SegmentPool::Acquire of " + std::to_string(size) + " bytes");
  }
  const uint64_t max_capacity = std::max(2 * size, RoundCapacity(size));
  {
    MutexLock lock(mu_);
    // Candidates that fit, smallest first; the flock check is a syscall, so
    // try only until one is free.
    std::vector<std::list<std::unique_ptr<ShmSegment>>::iterator> fits;
    for (auto it = pooled_.begin(); it != pooled_.end(); ++it) {
      uint64_t cap = (*it)->capacity();
      if (cap >= size && cap <= max_capacity) fits.push_back(it);
    }
    std::stable_sort(fits.begin(), fits.end(), [](const auto& a, const auto& b) {
      return (*a)->capacity() < (*b)->capacity();
    });
    for (auto it : fits) {
      if (!(*it)->NoReaders()) continue;
      std::unique_ptr<ShmSegment> segment = std::move(*it);
      pooled_.erase(it);
      stats_.pooled_bytes -= static_cast<int64_t>(segment->capacity());
      stats_.pooled_segments--;
      stats_.hits++;
      return segment;
    }
    stats_.misses++;
  }
  return ShmSegment::Create(RoundCapacity(size));
}

void SegmentPool::Release(std::unique_ptr<ShmSegment> segment) {
  if (segment == nullptr) return;
  std::vector<std::unique_ptr<ShmSegment>> dropped;  // unmapped after unlocking
  {
    MutexLock lock(mu_);
    const int64_t cap = static_cast<int64_t>(segment->capacity());
    if (cap > max_pooled_bytes_) {
      dropped.push_back(std::move(segment));
      stats_.evictions++;
    } else {
      while (stats_.pooled_bytes + cap > max_pooled_bytes_) {
        stats_.pooled_bytes -= static_cast<int64_t>(pooled_.front()->capacity());
        stats_.pooled_segments--;
        stats_.evictions++;
        dropped.push_back(std::move(pooled_.front()));
        pooled_.pop_front();
      }
      pooled_.push_back(std::move(segment));
      stats_.pooled_bytes += cap;
      stats_.pooled_segments++;
    }
  }
}

void SegmentPool::Clear() {
  std::list<std::unique_ptr<ShmSegment>> dropped;  // unmapped after unlocking
  MutexLock lock(mu_);
  dropped.swap(pooled_);
  stats_.pooled_bytes = 0;
  stats_.pooled_segments = 0;
}

SegmentPool::Stats SegmentPool::GetStats() const {
  MutexLock lock(mu_);
  return stats_;
}

}  // namespace ferry::object
