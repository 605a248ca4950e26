// libFuzzer target: object::LayoutFromProto and ReadableValue::Open, the
// checks every ObjectValueProto from a peer goes through (task arguments,
// GET_OBJECT and FETCH_TENSORS replies, task returns).
//
// Input: the first byte picks the mode. Mode 0 parses the rest as a wire
// ObjectValueProto (what a peer sends). Mode 1 builds the layout fields
// directly from the bytes, so the fuzzer spends its time on offsets and sizes
// rather than on protobuf syntax. Invariants, beyond "no crash": an accepted
// layout is aligned, ordered, non-overlapping and inside the bytes present;
// FillLayout + LayoutFromProto round-trips it; every span ReadableValue hands
// out is readable (ASan checks each byte); and a layout made by ComputeLayout
// is always accepted.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferry/object/readable_value.h"
#include "ferry/object/value_layout.h"
#include "ferry/proto/ferry.pb.h"
#include "fuzz_checks.h"

namespace {

using ferry::fuzz::FuzzCheck;
using ferry::object::kBufferAlignment;
using ferry::object::ValueLayout;

// Any shm location is dropped: opening one maps /proc/<pid>/fd/<fd>, i.e. a
// descriptor of the fuzzer itself (ShmMapping has its own tests).
constexpr uint64_t kMaxInline = 1 << 20;

void CheckAccepted(const ValueLayout& l, const ferry::proto::ObjectValueProto& p,
                   uint64_t available) {
  FuzzCheck(l.buffer_offsets.size() == l.buffer_sizes.size(), "one offset per size");
  FuzzCheck(l.num_buffers() == static_cast<size_t>(p.buffer_sizes_size()), "every buffer kept");
  FuzzCheck(l.data_size == p.data_size() && l.data_size <= available, "data inside the bytes");
  uint64_t end = l.data_size;
  for (size_t i = 0; i < l.num_buffers(); ++i) {
    FuzzCheck(l.buffer_offsets[i] % kBufferAlignment == 0, "buffer aligned");
    FuzzCheck(l.buffer_offsets[i] >= end, "buffers ordered, not overlapping");
    FuzzCheck(l.buffer_offsets[i] <= available &&
                  l.buffer_sizes[i] <= available - l.buffer_offsets[i],
              "buffer inside the bytes");
    end = l.buffer_offsets[i] + l.buffer_sizes[i];
  }
  FuzzCheck(l.total_size == end && l.total_size <= available, "total_size is the last end");

  ferry::proto::ObjectValueProto again;
  ferry::object::FillLayout(l, &again);
  auto back = ferry::object::LayoutFromProto(again, available);
  FuzzCheck(back.ok() && *back == l, "FillLayout + LayoutFromProto round-trips");
}

void OpenAndRead(const ferry::proto::ObjectValueProto& p) {
  if (p.has_shm() || p.inline_data().size() > kMaxInline) return;
  auto value = std::make_shared<const ferry::proto::ObjectValueProto>(p);
  auto opened = ferry::object::ReadableValue::Open(value);
  auto layout = ferry::object::LayoutFromProto(p, p.inline_data().size());
  FuzzCheck(opened.ok() == layout.ok(), "Open accepts exactly the valid layouts");
  if (!opened.ok()) return;
  FuzzCheck((*opened)->layout() == *layout, "Open uses the proto's layout");
  ferry::fuzz::TouchValue(**opened);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ferry::fuzz::QuietProtobuf();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  ferry::proto::ObjectValueProto p;
  uint64_t available = 0;
  if (data[0] == 0) {
    if (!p.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
    available = p.has_shm() ? p.shm().size() : p.inline_data().size();
  } else {
    FuzzedDataProvider in(data + 1, size - 1);
    available = in.ConsumeIntegral<uint64_t>();
    p.set_data_size(in.ConsumeIntegral<uint64_t>());
    const int n_offsets = in.ConsumeIntegralInRange<int>(0, 16);
    const int n_sizes = in.ConsumeBool() ? n_offsets : in.ConsumeIntegralInRange<int>(0, 16);
    for (int i = 0; i < n_offsets; ++i) p.add_buffer_offsets(in.ConsumeIntegral<uint64_t>());
    for (int i = 0; i < n_sizes; ++i) p.add_buffer_sizes(in.ConsumeIntegral<uint64_t>());
    if (in.ConsumeBool()) {
      // Inline bytes: available is what is really there.
      p.set_inline_data(in.ConsumeRemainingBytesAsString());
      available = p.inline_data().size();
    }
  }

  auto layout = ferry::object::LayoutFromProto(p, available);
  if (layout.ok()) CheckAccepted(*layout, p, available);
  OpenAndRead(p);

  // A writer's layout of the same sizes is always valid against its own size.
  std::vector<uint64_t> sizes;
  uint64_t sum = p.data_size() % (uint64_t{1} << 40);
  for (uint64_t s : p.buffer_sizes()) {
    s %= uint64_t{1} << 40;  // sizes of memory the writer holds: no 64-bit overflow
    sizes.push_back(s);
    sum += s + kBufferAlignment;
  }
  if (sum < (uint64_t{1} << 60)) {
    ValueLayout computed = ferry::object::ComputeLayout(p.data_size() % (uint64_t{1} << 40), sizes);
    ferry::proto::ObjectValueProto filled;
    ferry::object::FillLayout(computed, &filled);
    auto back = ferry::object::LayoutFromProto(filled, computed.total_size);
    FuzzCheck(back.ok() && *back == computed, "ComputeLayout's layouts are accepted");
  }
  return 0;
}
