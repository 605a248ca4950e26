// Helpers shared by ferry's libFuzzer targets: an invariant check that
// aborts (libFuzzer then saves the input), and readers that touch every byte
// a decoded value claims to have, so ASan sees any span that lies outside
// its buffer.
//
// THREAD CONTRACT: free functions; thread-safe.
#pragma once

#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "ferry/object/readable_value.h"
#include "ferry/tensor/tensor.h"

namespace ferry::fuzz {

// Aborts with `what` when `ok` is false: a broken invariant is a finding.
inline void FuzzCheck(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "ferry fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

// Reads every byte of `bytes` (the sum keeps the loads from being optimized out).
inline uint64_t TouchBytes(std::span<const uint8_t> bytes) {
  uint64_t sum = 0;
  for (uint8_t b : bytes) sum += b;
  return sum;
}

// Reads the data and every buffer of an opened value and checks that each
// lies inside the value's layout.
inline uint64_t TouchValue(const object::ReadableValue& v) {
  const object::ValueLayout& layout = v.layout();
  uint64_t sum = TouchBytes(v.data());
  FuzzCheck(layout.data_size <= layout.total_size, "data ends within the value");
  for (size_t i = 0; i < v.num_buffers(); ++i) {
    FuzzCheck(layout.buffer_offsets[i] % object::kBufferAlignment == 0, "buffer is aligned");
    FuzzCheck(layout.buffer_offsets[i] + layout.buffer_sizes[i] <= layout.total_size,
              "buffer ends within the value");
    sum += TouchBytes(v.buffer(i));
  }
  return sum;
}

// Drops protobuf's own log lines (e.g. "invalid UTF-8" for every malformed
// string field): rejected input is the normal case here.
inline void QuietProtobuf() {
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
}

inline uint64_t TouchTensor(const tensor::Tensor& t) {
  if (t.nbytes() == 0) return 0;
  return TouchBytes({static_cast<const uint8_t*>(t.data()), t.nbytes()});
}

}  // namespace ferry::fuzz
