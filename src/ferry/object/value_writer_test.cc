#include "ferry/object/value_writer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ferry/object/local_segments.h"
#include "ferry/object/readable_value.h"
#include "ferry/object/shm_mapping.h"

namespace ferry::object {
namespace {

std::vector<uint8_t> Bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

class ValueWriterTest : public ::testing::Test {
 protected:
  SegmentPool pool_{64 << 20};
  LocalSegments segments_{pool_};
};

TEST_F(ValueWriterTest, InlineAtTheThresholdShmAbove) {
  // data 100 bytes + one buffer of 36 at offset 128: total 164.
  std::string data(100, 'd');
  auto buf = Bytes(36, 1);
  std::vector<std::span<const uint8_t>> bufs = {buf};

  ObjectId a = ObjectId::Random();
  auto inl = WriteValue(a, "pickle5", data, bufs, segments_, pool_, /*inline_limit=*/164);
  ASSERT_TRUE(inl.ok()) << inl.status();
  EXPECT_TRUE(inl->has_inline_data());
  EXPECT_EQ(inl->inline_data().size(), 164u);
  EXPECT_EQ(inl->format(), "pickle5");
  EXPECT_EQ(inl->data_size(), 100u);
  ASSERT_EQ(inl->buffer_offsets_size(), 1);
  EXPECT_EQ(inl->buffer_offsets(0), 128u);
  EXPECT_EQ(inl->inline_data().substr(0, 100), data);
  EXPECT_EQ(std::memcmp(inl->inline_data().data() + 128, buf.data(), 36), 0);
  EXPECT_EQ(inl->inline_data()[110], '\0') << "padding is zeroed";
  EXPECT_FALSE(segments_.Contains(a));

  ObjectId b = ObjectId::Random();
  auto shm = WriteValue(b, "pickle5", data, bufs, segments_, pool_, /*inline_limit=*/163);
  ASSERT_TRUE(shm.ok()) << shm.status();
  ASSERT_TRUE(shm->has_shm());
  EXPECT_EQ(shm->shm().size(), 164u);
  EXPECT_EQ(shm->shm().pid(), getpid());
  EXPECT_TRUE(segments_.Contains(b));
  EXPECT_EQ(segments_.Size(), 1u);

  auto m = ShmMapping::Open(shm->shm());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(std::memcmp((*m)->data(), data.data(), 100), 0);
  EXPECT_EQ(std::memcmp((*m)->data() + 128, buf.data(), 36), 0);
}

TEST_F(ValueWriterTest, EmptyValueIsInlineEvenWithNegativeLimit) {
  auto v = WriteValue(ObjectId::Random(), "raw", "", {}, segments_, pool_, -1);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->has_inline_data());
  EXPECT_EQ(segments_.Size(), 0u);
}

TEST_F(ValueWriterTest, FreeReturnsSegmentToPoolAndItIsReused) {
  auto payload = Bytes(3 << 20, 9);
  std::vector<std::span<const uint8_t>> bufs = {payload};
  ObjectId a = ObjectId::Random();
  auto v1 = WriteValue(a, "pickle5", "hdr", bufs, segments_, pool_, 1000);
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(pool_.GetStats().pooled_segments, 0u);
  segments_.Free(a);
  EXPECT_EQ(segments_.Size(), 0u);
  EXPECT_EQ(pool_.GetStats().pooled_segments, 1u);
  segments_.Free(a);  // unknown now: no-op

  auto v2 = WriteValue(ObjectId::Random(), "pickle5", "hdr", bufs, segments_, pool_, 1000);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(pool_.GetStats().hits, 1u);
  EXPECT_EQ(v2->shm().fd(), v1->shm().fd());
  segments_.Clear();
  EXPECT_EQ(segments_.Size(), 0u);
  EXPECT_EQ(pool_.GetStats().pooled_segments, 1u);
}

TEST_F(ValueWriterTest, DuplicateIdIsAlreadyExists) {
  auto payload = Bytes(1 << 20, 3);
  std::vector<std::span<const uint8_t>> bufs = {payload};
  ObjectId a = ObjectId::Random();
  ASSERT_TRUE(WriteValue(a, "raw", "", bufs, segments_, pool_, 0).ok());
  auto again = WriteValue(a, "raw", "", bufs, segments_, pool_, 0);
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(segments_.Size(), 1u);
  EXPECT_EQ(pool_.GetStats().pooled_segments, 1u) << "the losing segment went back to the pool";
}

TEST_F(ValueWriterTest, ReserveFillFromThreadsCommit) {
  std::vector<uint64_t> sizes = {1 << 20, 3, 2 << 20};
  ObjectId id = ObjectId::Random();
  auto pending = ReserveValue(id, "pickle5", 10, sizes, segments_, pool_, 100 << 10);
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_FALSE(pending->is_inline());
  ASSERT_EQ(pending->num_buffers(), 3u);
  PendingValue moved = std::move(*pending);  // spans survive moves
  std::memcpy(moved.data().data(), "0123456789", 10);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < 3; ++i) {
    threads.emplace_back([&moved, i] {
      std::span<uint8_t> b = moved.buffer(i);
      std::memset(b.data(), static_cast<int>(i + 1), b.size());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(segments_.Contains(id)) << "nothing is published before Commit";
  auto value = moved.Commit();
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_TRUE(segments_.Contains(id));
  EXPECT_EQ(moved.Commit().status().code(), StatusCode::kFailedPrecondition);

  auto rv = ReadableValue::Open(std::make_shared<proto::ObjectValueProto>(*value));
  ASSERT_TRUE(rv.ok()) << rv.status();
  EXPECT_EQ(std::string(reinterpret_cast<char*>((*rv)->data().data()), 10), "0123456789");
  for (size_t i = 0; i < 3; ++i) {
    auto b = (*rv)->buffer(i);
    ASSERT_EQ(b.size(), sizes[i]);
    EXPECT_EQ(b.front(), i + 1);
    EXPECT_EQ(b.back(), i + 1);
  }
}

TEST_F(ValueWriterTest, ReserveInlineSpansSurviveMove) {
  std::vector<uint64_t> sizes = {5};
  auto pending = ReserveValue(ObjectId::Random(), "raw", 3, sizes, segments_, pool_, 1000);
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->is_inline());
  PendingValue moved = std::move(*pending);
  std::memcpy(moved.data().data(), "abc", 3);
  std::memcpy(moved.buffer(0).data(), "hello", 5);
  auto value = moved.Commit();
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value->inline_data().substr(0, 3), "abc");
  EXPECT_EQ(value->inline_data().substr(64, 5), "hello");
}

TEST_F(ValueWriterTest, AbandonedReservationReturnsSegment) {
  std::vector<uint64_t> sizes = {1 << 20};
  {
    auto pending = ReserveValue(ObjectId::Random(), "raw", 0, sizes, segments_, pool_, 0);
    ASSERT_TRUE(pending.ok());
    EXPECT_FALSE(pending->is_inline());
  }
  EXPECT_EQ(pool_.GetStats().pooled_segments, 1u);
  EXPECT_EQ(segments_.Size(), 0u);
}

TEST_F(ValueWriterTest, ReusedSegmentPaddingIsZeroed) {
  std::vector<uint8_t> ones(1 << 20, 0xff);
  std::vector<std::span<const uint8_t>> bufs = {ones};
  ObjectId a = ObjectId::Random();
  ASSERT_TRUE(WriteValue(a, "raw", "", bufs, segments_, pool_, 0).ok());
  segments_.Free(a);
  // Same segment, now 10 bytes of data then a buffer at 64.
  std::vector<uint8_t> small(1 << 19, 0x11);
  std::vector<std::span<const uint8_t>> bufs2 = {small};
  auto v = WriteValue(ObjectId::Random(), "raw", "0123456789", bufs2, segments_, pool_, 0);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(pool_.GetStats().hits, 1u);
  auto m = ShmMapping::Open(v->shm());
  ASSERT_TRUE(m.ok());
  for (int i = 10; i < 64; ++i) ASSERT_EQ((*m)->data()[i], 0) << i;
}

}  // namespace
}  // namespace ferry::object
