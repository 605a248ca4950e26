#include "ferry/rpc/frame.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ferry/proto/ferry.pb.h"

namespace ferry::rpc {
namespace {

std::string MustEncode(uint16_t method, FrameKind kind, uint64_t id, std::string_view payload) {
  auto f = EncodeFrame(method, kind, id, payload);
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? *f : std::string();
}

// Decodes everything currently buffered; fails the test on a stream error.
std::vector<std::pair<FrameHeader, std::string>> Drain(FrameDecoder& d) {
  std::vector<std::pair<FrameHeader, std::string>> out;
  Frame f;
  for (;;) {
    auto r = d.Next(&f);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || !*r) break;
    out.emplace_back(f.header, std::string(f.payload));
  }
  return out;
}

TEST(FrameTest, HeaderIsLittleEndianAndRoundTrips) {
  FrameHeader h{0x01020304u, 0x0506, FrameKind::kErrorReply, 0x07, 0x08090a0b0c0d0e0full};
  char buf[kFrameHeaderSize];
  EncodeFrameHeader(h, buf);
  const unsigned char expected[16] = {0x04, 0x03, 0x02, 0x01, 0x06, 0x05, 0x02, 0x07,
                                      0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0x09, 0x08};
  EXPECT_EQ(std::memcmp(buf, expected, 16), 0);
  FrameHeader back = DecodeFrameHeader(buf);
  EXPECT_EQ(back.payload_size, h.payload_size);
  EXPECT_EQ(back.method, h.method);
  EXPECT_EQ(back.kind, h.kind);
  EXPECT_EQ(back.flags, h.flags);
  EXPECT_EQ(back.request_id, h.request_id);
}

TEST(FrameTest, EncodesProtobufAndDecodesWholeFrame) {
  proto::Hello hello;
  hello.set_token("secret");
  hello.set_pid(42);
  auto wire = EncodeFrame(proto::HELLO, FrameKind::kRequest, 7, hello);
  ASSERT_TRUE(wire.ok());
  EXPECT_EQ(wire->size(), kFrameHeaderSize + hello.ByteSizeLong());

  FrameDecoder d;
  d.Feed(*wire);
  Frame f;
  auto r = d.Next(&f);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(*r);
  EXPECT_EQ(f.header.method, proto::HELLO);
  EXPECT_EQ(f.header.kind, FrameKind::kRequest);
  EXPECT_EQ(f.header.request_id, 7u);
  proto::Hello back;
  ASSERT_TRUE(back.ParseFromArray(f.payload.data(), static_cast<int>(f.payload.size())));
  EXPECT_EQ(back.token(), "secret");
  EXPECT_EQ(back.pid(), 42);
  EXPECT_FALSE(*d.Next(&f));
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(FrameTest, EmptyPayload) {
  FrameDecoder d;
  d.Feed(MustEncode(3, FrameKind::kOneWay, 0, ""));
  auto frames = Drain(d);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].first.payload_size, 0u);
  EXPECT_EQ(frames[0].second, "");
}

TEST(FrameTest, ByteByByteFeedYieldsFramesExactlyWhenComplete) {
  std::string a = MustEncode(1, FrameKind::kRequest, 1, "hello");
  std::string b = MustEncode(2, FrameKind::kReply, 2, std::string(300, 'x'));
  std::string stream = a + b;
  FrameDecoder d;
  std::vector<std::pair<FrameHeader, std::string>> got;
  for (size_t i = 0; i < stream.size(); ++i) {
    d.Feed(stream.substr(i, 1));
    auto frames = Drain(d);
    if (i + 1 == a.size() || i + 1 == stream.size()) {
      EXPECT_EQ(frames.size(), 1u) << "at byte " << i;
    } else {
      EXPECT_TRUE(frames.empty()) << "at byte " << i;
    }
    for (auto& f : frames) got.push_back(std::move(f));
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].second, "hello");
  EXPECT_EQ(got[1].second, std::string(300, 'x'));
  EXPECT_EQ(got[1].first.kind, FrameKind::kReply);
}

TEST(FrameTest, ManyFramesInOneFeedAndSplitHeader) {
  std::string stream;
  for (int i = 0; i < 100; ++i) {
    stream += MustEncode(static_cast<uint16_t>(i), FrameKind::kRequest, i, std::to_string(i));
  }
  FrameDecoder d;
  // Split inside the 3rd frame's header.
  size_t cut = 2 * (kFrameHeaderSize + 1) + 5;
  d.Feed(stream.substr(0, cut));
  auto first = Drain(d);
  EXPECT_EQ(first.size(), 2u);
  d.Feed(stream.substr(cut));
  auto rest = Drain(d);
  ASSERT_EQ(rest.size(), 98u);
  for (size_t i = 0; i < rest.size(); ++i) {
    EXPECT_EQ(rest[i].first.request_id, i + 2);
    EXPECT_EQ(rest[i].second, std::to_string(i + 2));
  }
}

TEST(FrameTest, OversizePayloadIsRejectedBeforeBuffering) {
  FrameDecoder d(/*max_payload=*/100);
  std::string ok = MustEncode(1, FrameKind::kRequest, 1, std::string(100, 'a'));
  d.Feed(ok);
  EXPECT_EQ(Drain(d).size(), 1u);
  // Only the header of a 101-byte frame: rejected without waiting for it.
  FrameHeader h{101, 1, FrameKind::kRequest, 0, 2};
  char buf[kFrameHeaderSize];
  EncodeFrameHeader(h, buf);
  d.Feed(std::string_view(buf, sizeof(buf)));
  Frame f;
  auto r = d.Next(&f);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  // Sticky, and the decoder never allocates for the announced size.
  d.Feed(std::string(50, 'z'));
  EXPECT_FALSE(d.Next(&f).ok());
  EXPECT_LT(d.capacity(), 1u << 20);
}

TEST(FrameTest, DefaultLimitRejectsHugeAnnouncedSize) {
  FrameDecoder d;
  FrameHeader h{0xffffffffu, 1, FrameKind::kRequest, 0, 1};
  char buf[kFrameHeaderSize];
  EncodeFrameHeader(h, buf);
  std::span<char> tail = d.WritableTail(kFrameHeaderSize);
  std::memcpy(tail.data(), buf, sizeof(buf));
  d.Commit(sizeof(buf));
  // Asking for room must not try to allocate 4 GiB.
  EXPECT_LT(d.WritableTail(1).size(), size_t{1} << 20);
  Frame f;
  EXPECT_EQ(d.Next(&f).status().code(), StatusCode::kResourceExhausted);
}

TEST(FrameTest, UnknownKindIsRejected) {
  std::string wire = MustEncode(1, FrameKind::kRequest, 1, "abc");
  wire[6] = 9;
  FrameDecoder d;
  d.Feed(wire);
  Frame f;
  auto r = d.Next(&f);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(FrameTest, EncodeRejectsPayloadAboveLimit) {
  auto r = EncodeFrame(1, FrameKind::kRequest, 1, std::string(11, 'a'), /*max_payload=*/10);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(FrameTest, WritableTailGrowsToHoldALargeFrame) {
  const size_t size = 5 * 1024 * 1024;
  std::string payload(size, '\0');
  for (size_t i = 0; i < size; ++i) payload[i] = static_cast<char>(i * 131);
  std::string wire = MustEncode(5, FrameKind::kReply, 9, payload);
  FrameDecoder d;
  size_t pos = 0;
  size_t reads = 0;
  while (pos < wire.size()) {
    std::span<char> tail = d.WritableTail(64 * 1024);
    ASSERT_GE(tail.size(), 64u * 1024);
    size_t n = std::min(tail.size(), wire.size() - pos);
    std::memcpy(tail.data(), wire.data() + pos, n);
    d.Commit(n);
    pos += n;
    ++reads;
  }
  // After the header is in, the tail offers room for the whole rest.
  EXPECT_LE(reads, 3u);
  Frame f;
  ASSERT_TRUE(*d.Next(&f));
  EXPECT_EQ(f.payload, payload);
}

// A fuzz target in miniature: arbitrary bytes with arbitrary splits never
// crash the decoder, and an error, once reported, stays.
TEST(FrameTest, RandomBytesNeverCrash) {
  std::mt19937 rng(1234);
  for (int round = 0; round < 200; ++round) {
    FrameDecoder d(1 << 16);
    bool failed = false;
    for (int chunk = 0; chunk < 20; ++chunk) {
      std::string bytes(rng() % 64, '\0');
      for (auto& c : bytes) c = static_cast<char>(rng());
      // Keep announced sizes small sometimes, so real frames come out too.
      if (!bytes.empty() && rng() % 2) bytes[0] = static_cast<char>(rng() % 8);
      d.Feed(bytes);
      Frame f;
      for (;;) {
        auto r = d.Next(&f);
        if (!r.ok()) {
          failed = true;
          break;
        }
        EXPECT_FALSE(failed);
        if (!*r) break;
        EXPECT_EQ(f.payload.size(), f.header.payload_size);
      }
    }
  }
}

TEST(FrameTest, RandomSplitsDecodeTheSameFrames) {
  std::mt19937 rng(99);
  std::string stream;
  std::vector<std::string> payloads;
  for (int i = 0; i < 300; ++i) {
    std::string p(rng() % 2000, '\0');
    for (auto& c : p) c = static_cast<char>(rng());
    payloads.push_back(p);
    stream += MustEncode(static_cast<uint16_t>(i), static_cast<FrameKind>(i % 4), i, p);
  }
  for (int round = 0; round < 20; ++round) {
    FrameDecoder d;
    std::vector<std::pair<FrameHeader, std::string>> got;
    size_t pos = 0;
    while (pos < stream.size()) {
      size_t n = std::min<size_t>(stream.size() - pos, 1 + rng() % 5000);
      d.Feed(std::string_view(stream).substr(pos, n));
      pos += n;
      for (auto& f : Drain(d)) got.push_back(std::move(f));
    }
    ASSERT_EQ(got.size(), payloads.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].first.request_id, i);
      EXPECT_EQ(static_cast<int>(got[i].first.kind), static_cast<int>(i % 4));
      EXPECT_EQ(got[i].second, payloads[i]);
    }
  }
}

}  // namespace
}  // namespace ferry::rpc
