#include "ferry/object/readable_value.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "ferry/object/inline_value.h"
#include "ferry/object/local_segments.h"
#include "ferry/object/value_writer.h"
#include "ferry/testing/child_process.h"
#include "ferry/testing/deadline.h"
#include "ferry/testing/pattern.h"

namespace ferry::object {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::FillPattern;
using testing::FirstMismatch;
using testing::MessageChannel;
using testing::Soon;

class ReadableValueTest : public ::testing::TestWithParam<bool /*shm*/> {
 protected:
  std::shared_ptr<const proto::ObjectValueProto> Write(std::string_view data,
                                                       std::vector<std::vector<uint8_t>> bufs) {
    std::vector<std::span<const uint8_t>> spans(bufs.begin(), bufs.end());
    auto v = WriteValue(ObjectId::Random(), "pickle5", data, spans, segments_, pool_,
                        GetParam() ? 0 : 1 << 20);
    EXPECT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->has_shm(), GetParam());
    return std::make_shared<proto::ObjectValueProto>(std::move(*v));
  }

  SegmentPool pool_{64 << 20};
  LocalSegments segments_{pool_};
};

TEST_P(ReadableValueTest, InlinedForAnotherHostReadsTheSame) {
  std::vector<uint8_t> b0(300 * 1024, 0x5a), b1(7, 0x01);
  auto proto = Write("the pickle", {b0, b1});
  auto inlined = InlineForAnotherHost(*proto);
  ASSERT_TRUE(inlined.ok()) << inlined.status();
  EXPECT_FALSE(inlined->has_shm());
  auto rv = ReadableValue::Open(std::make_shared<proto::ObjectValueProto>(*inlined));
  ASSERT_TRUE(rv.ok()) << rv.status();
  EXPECT_FALSE((*rv)->is_shm());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*rv)->data().data()), (*rv)->data().size()),
            "the pickle");
  ASSERT_EQ((*rv)->num_buffers(), 2u);
  EXPECT_EQ(std::vector<uint8_t>((*rv)->buffer(0).begin(), (*rv)->buffer(0).end()), b0);
  EXPECT_EQ(std::vector<uint8_t>((*rv)->buffer(1).begin(), (*rv)->buffer(1).end()), b1);
}

TEST_P(ReadableValueTest, RoundTrip) {
  std::vector<uint8_t> b0(1000, 0x5a), b1(3, 0x01), b2;
  auto proto = Write("the pickle", {b0, b1, b2});
  auto rv = ReadableValue::Open(proto);
  ASSERT_TRUE(rv.ok()) << rv.status();
  const ReadableValue& v = **rv;
  EXPECT_EQ(v.is_shm(), GetParam());
  EXPECT_EQ(v.format(), "pickle5");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.data().data()), v.data().size()),
            "the pickle");
  ASSERT_EQ(v.num_buffers(), 3u);
  EXPECT_EQ(std::vector<uint8_t>(v.buffer(0).begin(), v.buffer(0).end()), b0);
  EXPECT_EQ(std::vector<uint8_t>(v.buffer(1).begin(), v.buffer(1).end()), b1);
  EXPECT_EQ(v.buffer(2).size(), 0u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.buffer(i).data()) % 64, 0u) << "buffer " << i;
  }
}

TEST_P(ReadableValueTest, BuffersAreWritableAndPrivate) {
  std::vector<uint8_t> b0(4096, 7);
  auto proto = Write("x", {b0});
  auto r1 = ReadableValue::Open(proto);
  auto r2 = ReadableValue::Open(proto);
  ASSERT_TRUE(r1.ok() && r2.ok());
  (*r1)->buffer(0)[10] = 99;
  (*r1)->data()[0] = 'y';
  EXPECT_EQ((*r1)->buffer(0)[10], 99);
  EXPECT_EQ((*r2)->buffer(0)[10], 7) << "writes leaked to another reader";
  EXPECT_EQ((*r2)->data()[0], 'x');
  if (!GetParam()) {
    EXPECT_EQ(static_cast<uint8_t>(proto->inline_data()[64 + 10]), 7) << "wrote into the proto";
  }
}

TEST_P(ReadableValueTest, KeepAliveOutlivesTheValueObject) {
  std::vector<uint8_t> b0(100000, 3);
  auto proto = Write("d", {b0});
  auto rv = ReadableValue::Open(proto);
  ASSERT_TRUE(rv.ok());
  std::span<uint8_t> buf = (*rv)->buffer(0);
  std::shared_ptr<void> hold = (*rv)->keep_alive();
  rv->reset();
  proto.reset();
  EXPECT_EQ(buf[99999], 3);  // ASan would flag a dangling span
}

TEST_P(ReadableValueTest, RejectsLayoutBeyondTheBytes) {
  std::vector<uint8_t> b0(1000, 1);
  auto good = Write("abc", {b0});
  auto bad = std::make_shared<proto::ObjectValueProto>(*good);
  bad->set_buffer_sizes(0, 1u << 30);
  EXPECT_EQ(ReadableValue::Open(bad).status().code(), StatusCode::kInvalidArgument);
  bad = std::make_shared<proto::ObjectValueProto>(*good);
  bad->set_data_size(UINT64_MAX);
  EXPECT_EQ(ReadableValue::Open(bad).status().code(), StatusCode::kInvalidArgument);
  bad = std::make_shared<proto::ObjectValueProto>(*good);
  bad->add_buffer_sizes(1);
  EXPECT_EQ(ReadableValue::Open(bad).status().code(), StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(InlineAndShm, ReadableValueTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Shm" : "Inline"; });

TEST(ReadableValueOtherTest, EmptyAndNull) {
  auto empty = ReadableValue::Open(std::make_shared<proto::ObjectValueProto>());
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ((*empty)->data().size(), 0u);
  EXPECT_EQ((*empty)->num_buffers(), 0u);
  EXPECT_EQ(ReadableValue::Open(nullptr).status().code(), StatusCode::kInvalidArgument);
}

TEST(ReadableValueOtherTest, ReadsAnotherProcessesSegment) {
  // The child produces; the parent reads through /proc/<child>/fd while the
  // child keeps the segment alive.
  ChildProcess producer([](MessageChannel& ch) {
    SegmentPool pool(0);
    LocalSegments segments(pool);
    std::vector<uint8_t> buf(5 << 20);
    FillPattern(buf.data(), buf.size(), /*seed=*/3);
    std::vector<std::span<const uint8_t>> spans = {buf};
    auto v = WriteValue(ObjectId::Random(), "pickle5", "header", spans, segments, pool, 0);
    if (!v.ok()) return 11;
    if (!ch.Send({v->SerializeAsString()})) return 12;
    return ch.Receive(Deadline::After(60s)).ok() ? 0 : 13;
  });
  auto wire = producer.channel().ReceiveOne(Soon());
  ASSERT_TRUE(wire.ok()) << wire.status();
  auto proto = std::make_shared<proto::ObjectValueProto>();
  ASSERT_TRUE(proto->ParseFromString(*wire));
  EXPECT_EQ(proto->shm().pid(), producer.pid());
  {
    auto rv = ReadableValue::Open(proto);
    ASSERT_TRUE(rv.ok()) << rv.status();
    auto b = (*rv)->buffer(0);
    ASSERT_EQ(b.size(), 5u << 20);
    EXPECT_EQ(FirstMismatch(b.data(), b.size(), /*seed=*/3), -1);
  }
  producer.channel().Send({"q"});
  EXPECT_EQ(*producer.Join(Soon()), 0);
  // The producer is gone now.
  EXPECT_EQ(ReadableValue::Open(proto).status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ferry::object
