#include "ferry/object/readable_value.h"

#include <cstdlib>
#include <cstring>

#include "ferry/common/logging.h"

namespace ferry::object {

StatusOr<std::shared_ptr<ReadableValue>> ReadableValue::Open(
    std::shared_ptr<const proto::ObjectValueProto> value) {
  if (value == nullptr) return Status::InvalidArgument("ReadableValue::Open of a null value");
  std::shared_ptr<ReadableValue> rv(new ReadableValue());
  rv->value_ = std::move(value);
  const proto::ObjectValueProto& v = *rv->value_;

  switch (v.location_case()) {
    case proto::ObjectValueProto::kShm: {
      FERRY_ASSIGN_OR_RETURN(rv->mapping_, ShmMapping::Open(v.shm()));
      FERRY_ASSIGN_OR_RETURN(rv->layout_, LayoutFromProto(v, rv->mapping_->size()));
      rv->base_ = rv->mapping_->data();
      break;
    }
    case proto::ObjectValueProto::kInlineData:
    case proto::ObjectValueProto::LOCATION_NOT_SET: {
      const std::string& bytes = v.inline_data();  // "" when not set
      FERRY_ASSIGN_OR_RETURN(rv->layout_, LayoutFromProto(v, bytes.size()));
      if (!bytes.empty()) {
        const size_t rounded = (bytes.size() + kBufferAlignment - 1) / kBufferAlignment *
                               kBufferAlignment;
        rv->owned_ = static_cast<uint8_t*>(std::aligned_alloc(kBufferAlignment, rounded));
        if (rv->owned_ == nullptr) {
          return Status::ResourceExhausted("out of memory copying a " +
                                           std::to_string(bytes.size()) + "-byte inline value");
        }
        std::memcpy(rv->owned_, bytes.data(), bytes.size());
        rv->base_ = rv->owned_;
      }
      break;
    }
  }
  return rv;
}

ReadableValue::~ReadableValue() { std::free(owned_); }

std::span<uint8_t> ReadableValue::buffer(size_t i) const {
  FERRY_CHECK(i < layout_.num_buffers()) << "buffer " << i << " of " << layout_.num_buffers();
  return {base_ + layout_.buffer_offsets[i], layout_.buffer_sizes[i]};
}

std::shared_ptr<void> ReadableValue::keep_alive() const {
  return std::const_pointer_cast<ReadableValue>(shared_from_this());
}

}  // namespace ferry::object
