#include "ferry/object/local_segments.h"

#include <utility>

namespace ferry::object {

LocalSegments::~LocalSegments() { Clear(); }

Status LocalSegments::Put(const ObjectId& id, std::unique_ptr<ShmSegment> segment) {
  {
    MutexLock lock(mu_);
    auto [it, inserted] = segments_.try_emplace(id);
    if (inserted) {
      it->second = std::move(segment);
      return Status::Ok();
    }
  }
  pool_.Release(std::move(segment));
  return Status::AlreadyExists("object " + id.Hex() + " already has a shared-memory segment");
}

void LocalSegments::Free(const ObjectId& id) {
  std::unique_ptr<ShmSegment> segment;
  {
    MutexLock lock(mu_);
    auto it = segments_.find(id);
    if (it == segments_.end()) return;
    segment = std::move(it->second);
    segments_.erase(it);
  }
  pool_.Release(std::move(segment));
}

bool LocalSegments::Contains(const ObjectId& id) const {
  MutexLock lock(mu_);
  return segments_.contains(id);
}

size_t LocalSegments::Size() const {
  MutexLock lock(mu_);
  return segments_.size();
}

uint64_t LocalSegments::Bytes() const {
  MutexLock lock(mu_);
  uint64_t total = 0;
  for (const auto& [id, segment] : segments_) total += segment->capacity();
  return total;
}

void LocalSegments::Clear() {
  std::unordered_map<ObjectId, std::unique_ptr<ShmSegment>> all;
  {
    MutexLock lock(mu_);
    all.swap(segments_);
  }
  for (auto& [id, segment] : all) pool_.Release(std::move(segment));
}

}  // namespace ferry::object
