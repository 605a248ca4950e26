#include "ferry/object/value_layout.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace ferry::object {
namespace {

TEST(ValueLayoutTest, DataOnly) {
  ValueLayout l = ComputeLayout(100, {});
  EXPECT_EQ(l.data_size, 100u);
  EXPECT_EQ(l.num_buffers(), 0u);
  EXPECT_EQ(l.total_size, 100u);
}

TEST(ValueLayoutTest, BuffersAre64ByteAligned) {
  std::vector<uint64_t> sizes = {4096, 10, 0, 64};
  ValueLayout l = ComputeLayout(100, sizes);
  EXPECT_EQ(l.buffer_offsets, (std::vector<uint64_t>{128, 4224, 4288, 4288}));
  EXPECT_EQ(l.buffer_sizes, sizes);
  EXPECT_EQ(l.total_size, 4352u);
}

TEST(ValueLayoutTest, AlignedDataNeedsNoPadding) {
  std::vector<uint64_t> sizes = {1};
  ValueLayout l = ComputeLayout(64, sizes);
  EXPECT_EQ(l.buffer_offsets[0], 64u);
  EXPECT_EQ(l.total_size, 65u);
  ValueLayout empty = ComputeLayout(0, sizes);
  EXPECT_EQ(empty.buffer_offsets[0], 0u);
}

TEST(ValueLayoutTest, ProtoRoundTrip) {
  std::vector<uint64_t> sizes = {7, 1000, 3};
  ValueLayout l = ComputeLayout(33, sizes);
  proto::ObjectValueProto p;
  p.add_buffer_offsets(999);  // replaced, not appended to
  FillLayout(l, &p);
  auto back = LayoutFromProto(p, l.total_size);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, l);
  // More bytes than needed is fine (a segment is rounded up).
  EXPECT_TRUE(LayoutFromProto(p, l.total_size + 4096).ok());
  // One byte short is not.
  EXPECT_EQ(LayoutFromProto(p, l.total_size - 1).status().code(), StatusCode::kInvalidArgument);
}

proto::ObjectValueProto Make(uint64_t data_size, std::vector<uint64_t> offsets,
                             std::vector<uint64_t> sizes) {
  proto::ObjectValueProto p;
  p.set_data_size(data_size);
  for (uint64_t o : offsets) p.add_buffer_offsets(o);
  for (uint64_t s : sizes) p.add_buffer_sizes(s);
  return p;
}

void ExpectRejected(const proto::ObjectValueProto& p, uint64_t available, const char* why) {
  auto r = LayoutFromProto(p, available);
  EXPECT_FALSE(r.ok()) << why;
  if (!r.ok()) {
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << why << ": " << r.status();
  }
}

TEST(ValueLayoutTest, RejectsMaliciousProtos) {
  constexpr uint64_t kMax = UINT64_MAX;
  ExpectRejected(Make(10, {64}, {}), 1000, "count mismatch");
  ExpectRejected(Make(10, {}, {5}), 1000, "count mismatch (sizes only)");
  ExpectRejected(Make(1001, {}, {}), 1000, "data past the end");
  ExpectRejected(Make(kMax, {}, {}), 1000, "huge data");
  ExpectRejected(Make(10, {65}, {1}), 1000, "misaligned offset");
  ExpectRejected(Make(100, {64}, {1}), 1000, "buffer overlaps data");
  ExpectRejected(Make(0, {0, 64}, {100, 1}), 1000, "buffers overlap");
  ExpectRejected(Make(0, {128, 64}, {1, 1}), 1000, "offsets go backwards");
  ExpectRejected(Make(0, {960}, {41}), 1000, "buffer past the end");
  ExpectRejected(Make(0, {1024}, {0}), 1000, "empty buffer past the end");
  ExpectRejected(Make(0, {kMax & ~uint64_t{63}}, {128}), 1000, "offset + size overflows");
  ExpectRejected(Make(0, {64}, {kMax}), 1000, "size overflows");
  ExpectRejected(Make(0, {64}, {kMax - 63}), kMax, "offset + size wraps to exactly 0");
}

TEST(ValueLayoutTest, AcceptsEdgeCases) {
  EXPECT_TRUE(LayoutFromProto(Make(0, {}, {}), 0).ok());
  EXPECT_TRUE(LayoutFromProto(Make(0, {0, 0}, {0, 0}), 0).ok());  // empty buffers at 0
  auto r = LayoutFromProto(Make(10, {64, 960}, {1, 40}), 1000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->total_size, 1000u);
}

}  // namespace
}  // namespace ferry::object
