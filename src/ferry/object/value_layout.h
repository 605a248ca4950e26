// ValueLayout: where the parts of a serialized value lie in its bytes.
//
// A serialized value (pickle protocol 5, or any format with out-of-band
// buffers) is `data` plus N buffers laid back to back: data at offset 0, each
// buffer at the next 64-byte-aligned offset after the previous part, so a
// buffer handed to numpy or torch keeps cache-line alignment. The same layout
// is used inline (ObjectValueProto.inline_data) and in a shared-memory segment.
// ComputeLayout is for writers (trusted sizes); LayoutFromProto parses what a
// peer sent (untrusted) and rejects anything out of range.
//
// THREAD CONTRACT: free functions over values; thread-safe.
//
//   uint64_t sizes[] = {4096, 10};
//   ValueLayout l = ComputeLayout(/*data_size=*/100, sizes);  // offsets 128, 4224
//   FillLayout(l, &proto);
//   FERRY_ASSIGN_OR_RETURN(ValueLayout back, LayoutFromProto(proto, bytes.size()));
//   auto buf0 = bytes.subspan(back.buffer_offsets[0], back.buffer_sizes[0]);
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ferry/proto/ferry.pb.h"
#include "ferry/status.h"

namespace ferry::object {

// Alignment of every out-of-band buffer inside a value.
inline constexpr uint64_t kBufferAlignment = 64;

struct ValueLayout {
  uint64_t data_size = 0;
  std::vector<uint64_t> buffer_offsets;
  std::vector<uint64_t> buffer_sizes;
  // End of the last part (data or buffer); the bytes a value occupies.
  uint64_t total_size = 0;

  size_t num_buffers() const { return buffer_sizes.size(); }
  bool operator==(const ValueLayout&) const = default;
};

// Lays out `data_size` bytes of data followed by the buffers. Sizes describe
// memory the caller already holds, so they cannot overflow in practice; an
// overflowing request is a broken invariant and aborts.
ValueLayout ComputeLayout(uint64_t data_size, std::span<const uint64_t> buffer_sizes);

// Writes data_size, buffer_offsets and buffer_sizes into `proto` (replacing
// any previous ones). Leaves the location and format alone.
void FillLayout(const ValueLayout& layout, proto::ObjectValueProto* proto);

// Reads the layout of `proto` and checks it against `available_size`, the
// number of bytes really present (inline_data size or the mapped segment
// size). Untrusted input: returns InvalidArgument if the two repeated fields
// differ in length, any offset is not 64-byte aligned, any part overlaps the
// data or a previous buffer, or any part ends past `available_size`
// (overflow-safe).
StatusOr<ValueLayout> LayoutFromProto(const proto::ObjectValueProto& proto,
                                      uint64_t available_size);

}  // namespace ferry::object
