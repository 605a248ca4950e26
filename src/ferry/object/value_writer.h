// Writing serialized values: inline in the proto when small, into a pooled
// shared-memory segment otherwise.
//
// WriteValue copies caller-held data and buffers in one step. ReserveValue is
// the two-step form for callers that fill the bytes themselves (the Python
// layer copies pickle-5 buffers with the GIL released): it returns a
// PendingValue with writable spans at their final offsets; Commit() then
// registers the segment under the object id and returns the proto. Either
// way each byte is copied exactly once, with CopyBytes (memcpy, streaming
// for large buffers; see copy_bytes.h) into pages the pool keeps warm.
//
// Lifecycle of a PendingValue: move-only; Commit() at most once; destroyed
// without Commit, its segment goes back to the pool. The segments table and
// the pool must outlive it.
//
// THREAD CONTRACT: WriteValue and ReserveValue are thread-safe (the table and
// pool are). A PendingValue is externally synchronized, except that distinct
// spans may be filled from different threads at once; Commit must come after
// every write to them.
//
//   FERRY_ASSIGN_OR_RETURN(PendingValue pending,
//       ReserveValue(id, "pickle5", data.size(), buffer_sizes, segments, pool, inline_limit));
//   CopyBytes(pending.data().data(), data.data(), data.size());
//   for (size_t i = 0; i < n; ++i) CopyBytes(pending.buffer(i).data(), bufs[i], sizes[i]);
//   FERRY_ASSIGN_OR_RETURN(proto::ObjectValueProto value, pending.Commit());
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "ferry/common/id.h"
#include "ferry/object/copy_bytes.h"
#include "ferry/object/local_segments.h"
#include "ferry/object/segment_pool.h"
#include "ferry/object/value_layout.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/status.h"

namespace ferry::object {

class PendingValue {
 public:
  PendingValue(PendingValue&&) noexcept;
  PendingValue& operator=(PendingValue&&) noexcept;
  ~PendingValue();

  bool is_inline() const { return segment_ == nullptr; }
  const ValueLayout& layout() const { return layout_; }
  // Writable destinations at their final offsets; valid until Commit or
  // destruction (and, for shm values, they are the segment's own pages).
  std::span<uint8_t> data() const { return {base_, layout_.data_size}; }
  size_t num_buffers() const { return layout_.num_buffers(); }
  std::span<uint8_t> buffer(size_t i) const;

  // Publishes the value: for shm, registers the segment in the table under
  // the id (AlreadyExists if the id has one; the segment then returns to the
  // pool) and fills `shm`; for inline, returns the proto with inline_data.
  // FailedPrecondition on a second call.
  StatusOr<proto::ObjectValueProto> Commit();

 private:
  friend StatusOr<PendingValue> ReserveValue(const ObjectId&, std::string_view, uint64_t,
                                             std::span<const uint64_t>, LocalSegments&,
                                             SegmentPool&, int64_t);
  PendingValue() = default;
  void Abandon();

  ObjectId id_;
  ValueLayout layout_;
  // Heap-held so spans into inline_data survive moves of this object.
  std::unique_ptr<proto::ObjectValueProto> proto_;
  std::unique_ptr<ShmSegment> segment_;  // null for inline values
  LocalSegments* segments_ = nullptr;
  SegmentPool* pool_ = nullptr;
  uint8_t* base_ = nullptr;
  bool committed_ = false;
};

// Lays out `data_size` bytes plus buffers of `buffer_sizes` and reserves room
// for them: inline when the total is <= `inline_limit` (or zero), else a
// segment from `pool`. Padding between parts is zeroed; the parts themselves
// are not (a reused segment holds stale bytes): the caller fills every span.
StatusOr<PendingValue> ReserveValue(const ObjectId& id, std::string_view format, uint64_t data_size,
                                    std::span<const uint64_t> buffer_sizes, LocalSegments& segments,
                                    SegmentPool& pool, int64_t inline_limit);

// ReserveValue, CopyBytes `data` and each buffer into place, Commit.
StatusOr<proto::ObjectValueProto> WriteValue(const ObjectId& id, std::string_view format,
                                             std::string_view data,
                                             std::span<const std::span<const uint8_t>> buffers,
                                             LocalSegments& segments, SegmentPool& pool,
                                             int64_t inline_limit);

}  // namespace ferry::object
