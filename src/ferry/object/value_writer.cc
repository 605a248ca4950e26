#include "ferry/object/value_writer.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "ferry/common/logging.h"
#include "ferry/object/copy_bytes.h"

namespace ferry::object {
namespace {

constexpr uint64_t kPageSize = 4096;

// Zeroes the gaps between parts and the rest of the last page, so a reused
// segment leaks no stale bytes of an earlier value to this value's readers.
void ZeroPadding(const ValueLayout& layout, uint8_t* base, uint64_t capacity) {
  uint64_t end = layout.data_size;
  for (size_t i = 0; i < layout.num_buffers(); ++i) {
    std::memset(base + end, 0, layout.buffer_offsets[i] - end);
    end = layout.buffer_offsets[i] + layout.buffer_sizes[i];
  }
  uint64_t page_end = std::min(capacity, (end + kPageSize - 1) / kPageSize * kPageSize);
  if (page_end > end) std::memset(base + end, 0, page_end - end);
}

}  // namespace

PendingValue::PendingValue(PendingValue&& other) noexcept { *this = std::move(other); }

PendingValue& PendingValue::operator=(PendingValue&& other) noexcept {
  if (this != &other) {
    Abandon();
    id_ = other.id_;
    layout_ = std::move(other.layout_);
    proto_ = std::move(other.proto_);
    segment_ = std::move(other.segment_);
    segments_ = other.segments_;
    pool_ = other.pool_;
    base_ = std::exchange(other.base_, nullptr);
    committed_ = std::exchange(other.committed_, true);
  }
  return *this;
}

PendingValue::~PendingValue() { Abandon(); }

void PendingValue::Abandon() {
  if (segment_ != nullptr && pool_ != nullptr) pool_->Release(std::move(segment_));
  segment_.reset();
}

std::span<uint8_t> PendingValue::buffer(size_t i) const {
  FERRY_CHECK(i < layout_.num_buffers()) << "buffer " << i << " of " << layout_.num_buffers();
  return {base_ + layout_.buffer_offsets[i], layout_.buffer_sizes[i]};
}

StatusOr<proto::ObjectValueProto> PendingValue::Commit() {
  if (committed_ || proto_ == nullptr) {
    return Status::FailedPrecondition("PendingValue for " + id_.Hex() + " was already committed");
  }
  committed_ = true;
  proto::ObjectValueProto value = std::move(*proto_);
  proto_.reset();
  base_ = nullptr;
  if (segment_ != nullptr) {
    *value.mutable_shm() = segment_->Location(layout_.total_size);
    FERRY_RETURN_IF_ERROR(segments_->Put(id_, std::move(segment_)));
  }
  return value;
}

StatusOr<PendingValue> ReserveValue(const ObjectId& id, std::string_view format, uint64_t data_size,
                                    std::span<const uint64_t> buffer_sizes, LocalSegments& segments,
                                    SegmentPool& pool, int64_t inline_limit) {
  PendingValue pending;
  pending.id_ = id;
  pending.layout_ = ComputeLayout(data_size, buffer_sizes);
  pending.segments_ = &segments;
  pending.pool_ = &pool;
  pending.proto_ = std::make_unique<proto::ObjectValueProto>();
  proto::ObjectValueProto& value = *pending.proto_;
  value.set_format(std::string(format));
  FillLayout(pending.layout_, &value);

  const uint64_t total = pending.layout_.total_size;
  if (total == 0 || (inline_limit >= 0 && total <= static_cast<uint64_t>(inline_limit))) {
    std::string* bytes = value.mutable_inline_data();
    bytes->resize(total);  // zero-filled, padding included
    pending.base_ = reinterpret_cast<uint8_t*>(bytes->data());
    return pending;
  }
  FERRY_ASSIGN_OR_RETURN(pending.segment_, pool.Acquire(total));
  pending.base_ = pending.segment_->data();
  ZeroPadding(pending.layout_, pending.base_, pending.segment_->capacity());
  return pending;
}

StatusOr<proto::ObjectValueProto> WriteValue(const ObjectId& id, std::string_view format,
                                             std::string_view data,
                                             std::span<const std::span<const uint8_t>> buffers,
                                             LocalSegments& segments, SegmentPool& pool,
                                             int64_t inline_limit) {
  std::vector<uint64_t> sizes;
  sizes.reserve(buffers.size());
  for (const auto& b : buffers) sizes.push_back(b.size());
  FERRY_ASSIGN_OR_RETURN(PendingValue pending, ReserveValue(id, format, data.size(), sizes,
                                                            segments, pool, inline_limit));
  CopyBytes(pending.data().data(), data.data(), data.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    CopyBytes(pending.buffer(i).data(), buffers[i].data(), buffers[i].size());
  }
  return pending.Commit();
}

}  // namespace ferry::object
