#include "ferry/object/value_layout.h"

#include <string>

#include "ferry/common/logging.h"

namespace ferry::object {
namespace {

// Rounds up to kBufferAlignment; false on overflow.
bool AlignUp(uint64_t x, uint64_t* out) {
  if (x > UINT64_MAX - (kBufferAlignment - 1)) return false;
  *out = (x + kBufferAlignment - 1) & ~(kBufferAlignment - 1);
  return true;
}

}  // namespace

ValueLayout ComputeLayout(uint64_t data_size, std::span<const uint64_t> buffer_sizes) {
  ValueLayout layout;
  layout.data_size = data_size;
  layout.buffer_offsets.reserve(buffer_sizes.size());
  layout.buffer_sizes.assign(buffer_sizes.begin(), buffer_sizes.end());
  uint64_t end = data_size;
  for (uint64_t size : buffer_sizes) {
    uint64_t offset = 0;
    FERRY_CHECK(AlignUp(end, &offset) && size <= UINT64_MAX - offset)
        << "value layout overflows 64 bits";
    layout.buffer_offsets.push_back(offset);
    end = offset + size;
  }
  layout.total_size = end;
  return layout;
}

void FillLayout(const ValueLayout& layout, proto::ObjectValueProto* proto) {
  proto->set_data_size(layout.data_size);
  proto->clear_buffer_offsets();
  proto->clear_buffer_sizes();
  proto->mutable_buffer_offsets()->Reserve(static_cast<int>(layout.num_buffers()));
  proto->mutable_buffer_sizes()->Reserve(static_cast<int>(layout.num_buffers()));
  for (size_t i = 0; i < layout.num_buffers(); ++i) {
    proto->add_buffer_offsets(layout.buffer_offsets[i]);
    proto->add_buffer_sizes(layout.buffer_sizes[i]);
  }
}

StatusOr<ValueLayout> LayoutFromProto(const proto::ObjectValueProto& proto,
                                      uint64_t available_size) {
  const int n = proto.buffer_offsets_size();
  if (n != proto.buffer_sizes_size()) {
    return Status::InvalidArgument("value layout: " + std::to_string(n) + " buffer offsets but " +
                                   std::to_string(proto.buffer_sizes_size()) + " buffer sizes");
  }
  if (proto.data_size() > available_size) {
    return Status::InvalidArgument("value layout: data_size " + std::to_string(proto.data_size()) +
                                   " exceeds the " + std::to_string(available_size) +
                                   " bytes present");
  }
  ValueLayout layout;
  layout.data_size = proto.data_size();
  layout.buffer_offsets.reserve(n);
  layout.buffer_sizes.reserve(n);
  uint64_t end = layout.data_size;  // end of the previous part
  for (int i = 0; i < n; ++i) {
    const uint64_t offset = proto.buffer_offsets(i);
    const uint64_t size = proto.buffer_sizes(i);
    const std::string where = "value layout: buffer " + std::to_string(i);
    if (offset % kBufferAlignment != 0) {
      return Status::InvalidArgument(where + " offset " + std::to_string(offset) +
                                     " is not 64-byte aligned");
    }
    if (offset < end) {
      return Status::InvalidArgument(where + " at offset " + std::to_string(offset) +
                                     " overlaps the previous part ending at " +
                                     std::to_string(end));
    }
    // offset <= available_size is checked first so the subtraction cannot wrap.
    if (offset > available_size || size > available_size - offset) {
      return Status::InvalidArgument(where + " [" + std::to_string(offset) + ", +" +
                                     std::to_string(size) + ") runs past the " +
                                     std::to_string(available_size) + " bytes present");
    }
    layout.buffer_offsets.push_back(offset);
    layout.buffer_sizes.push_back(size);
    end = offset + size;
  }
  layout.total_size = end;
  return layout;
}

}  // namespace ferry::object
