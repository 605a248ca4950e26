// ReadableValue: a serialized value opened for reading, wherever its bytes
// are (inline in the proto or in a producer's shared-memory segment).
//
// Lifecycle: Open() validates the layout against the bytes really present
// and exposes data and buffers as writable, private spans: an shm value maps
// the segment copy-on-write (ShmMapping: no copy up front; a write copies
// only the touched page), an inline value copies inline_data once into a
// 64-byte-aligned buffer of its own (it is at most the inline limit, ~100
// KiB), so writes never alter the shared proto. Wrapping code (numpy arrays,
// tensors over the buffers) holds keep_alive() for as long as it uses the
// spans; the bytes go away with the last holder.
//
// THREAD CONTRACT: immutable after Open; thread-safe to read. Writes through
// the spans are the caller's to synchronize.
//
//   FERRY_ASSIGN_OR_RETURN(std::shared_ptr<ReadableValue> v, ReadableValue::Open(proto));
//   if (v->format() != "pickle5") return Status::InvalidArgument("unexpected format");
//   std::span<uint8_t> pickle = v->data();
//   for (size_t i = 0; i < v->num_buffers(); ++i) Wrap(v->buffer(i), v->keep_alive());
//   v.reset();                                   // wrappers keep the bytes alive
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "ferry/object/shm_mapping.h"
#include "ferry/object/value_layout.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/status.h"

namespace ferry::object {

class ReadableValue : public std::enable_shared_from_this<ReadableValue> {
 public:
  // Errors: InvalidArgument for a malformed layout (untrusted input), and
  // ShmMapping::Open's errors (DataLoss when the producer is gone). A value
  // with no location is empty (data_size 0, no buffers) and opens as such;
  // the proto's `error` field is not interpreted here.
  static StatusOr<std::shared_ptr<ReadableValue>> Open(
      std::shared_ptr<const proto::ObjectValueProto> value);

  ~ReadableValue();
  ReadableValue(const ReadableValue&) = delete;
  ReadableValue& operator=(const ReadableValue&) = delete;

  const std::string& format() const { return value_->format(); }
  const proto::ObjectValueProto& proto() const { return *value_; }
  bool is_shm() const { return mapping_ != nullptr; }
  const ValueLayout& layout() const { return layout_; }

  std::span<uint8_t> data() const { return {base_, layout_.data_size}; }
  size_t num_buffers() const { return layout_.num_buffers(); }
  // Aborts if i >= num_buffers().
  std::span<uint8_t> buffer(size_t i) const;

  // Keeps the bytes behind every span alive (this object).
  std::shared_ptr<void> keep_alive() const;

 private:
  ReadableValue() = default;

  std::shared_ptr<const proto::ObjectValueProto> value_;
  ValueLayout layout_;
  std::shared_ptr<ShmMapping> mapping_;  // shm values
  uint8_t* owned_ = nullptr;             // inline values: aligned private copy (free())
  uint8_t* base_ = nullptr;
};

}  // namespace ferry::object
