// libFuzzer target: rpc::FrameDecoder over an arbitrary byte stream, split
// arbitrarily, fed through both of its input paths.
//
// The input's tail chooses the decoder's payload limit, the feeding path
// (Feed copies; WritableTail + Commit is what Channel does) and the size of
// every chunk; its head is the stream. Besides "no crash, leak or hang", the
// decoder must agree with a one-shot reference decoder over the whole stream:
// the same frames, byte for byte, and the same sticky error. Every frame is
// re-encoded and must reproduce its bytes on the wire.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/rpc/frame.h"

namespace {

using ferry::StatusCode;
using ferry::rpc::EncodeFrame;
using ferry::rpc::EncodeFrameHeader;
using ferry::rpc::Frame;
using ferry::rpc::FrameDecoder;
using ferry::rpc::FrameHeader;
using ferry::rpc::kFrameHeaderSize;

// Limits the fuzzer picks from. The default (1 GiB) only with Feed(): through
// WritableTail a hostile 1 GiB length prefix makes the decoder reserve 1 GiB,
// which is its documented bound, not a bug, and would only slow the run.
constexpr uint32_t kLimits[] = {
    ferry::rpc::kDefaultMaxPayload, 0, 1, 15, 16, 17, 255, 4096, 65536, 1u << 20};
constexpr size_t kFeedOnlyLimits = 1;  // kLimits[0, kFeedOnlyLimits) are Feed-only

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "frame_decoder_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

struct RefFrame {
  size_t offset;  // of the header in the stream
  FrameHeader header;
};

// What the decoder must end in after seeing all of `stream`.
struct Expected {
  std::vector<RefFrame> frames;
  StatusCode error = StatusCode::kOk;  // sticky error, if any
  size_t consumed = 0;                 // bytes of whole frames
};

Expected ReferenceDecode(std::string_view stream, uint32_t max_payload) {
  Expected e;
  size_t pos = 0;
  while (stream.size() - pos >= kFrameHeaderSize) {
    const auto* p = reinterpret_cast<const uint8_t*>(stream.data() + pos);
    const uint32_t size = p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24;
    if (p[6] > 3) {
      e.error = StatusCode::kInvalidArgument;
      break;
    }
    if (size > max_payload) {
      e.error = StatusCode::kResourceExhausted;
      break;
    }
    if (stream.size() - pos - kFrameHeaderSize < size) break;
    FrameHeader h;
    h.payload_size = size;
    h.method = static_cast<uint16_t>(p[4] | p[5] << 8);
    h.kind = static_cast<ferry::rpc::FrameKind>(p[6]);
    h.flags = p[7];
    h.request_id = 0;
    for (int i = 7; i >= 0; --i) h.request_id = h.request_id << 8 | p[8 + i];
    e.frames.push_back({pos, h});
    pos += kFrameHeaderSize + size;
  }
  e.consumed = pos;
  return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const bool zero_copy = in.ConsumeBool();
  const size_t first_limit = zero_copy ? kFeedOnlyLimits : 0;
  const uint32_t max_payload =
      kLimits[in.ConsumeIntegralInRange<size_t>(first_limit, std::size(kLimits) - 1)];

  FrameDecoder decoder(max_payload);
  std::string stream;  // everything fed so far
  size_t next_frame = 0;
  Expected seen;  // what the decoder returned, checked against the reference at the end
  bool failed = false;

  // Drains the decoder. Frames returned since the last feed must all stay
  // valid until the next feed ("Next() does not invalidate earlier frames").
  auto drain = [&] {
    std::vector<Frame> batch;
    for (;;) {
      Frame f;
      auto r = decoder.Next(&f);
      if (!r.ok()) {
        Check(!failed || r.status().code() == seen.error, "the error is sticky");
        failed = true;
        seen.error = r.status().code();
        break;
      }
      Check(!failed, "no frame after an error");
      if (!*r) break;
      Check(f.payload.size() == f.header.payload_size, "payload size matches the header");
      Check(f.header.payload_size <= max_payload, "payload within the limit");
      batch.push_back(f);
    }
    for (const Frame& f : batch) {
      const size_t at = next_frame;
      Check(stream.size() - at >= kFrameHeaderSize + f.payload.size(), "frame lies in the stream");
      Check(std::memcmp(stream.data() + at + kFrameHeaderSize, f.payload.data(),
                        f.payload.size()) == 0,
            "payload bytes are the stream's");
      char header[kFrameHeaderSize];
      EncodeFrameHeader(f.header, header);
      Check(std::memcmp(stream.data() + at, header, kFrameHeaderSize) == 0,
            "header re-encodes to the stream's bytes");
      auto wire = EncodeFrame(f.header.method, f.header.kind, f.header.request_id, f.payload,
                              max_payload);
      Check(wire.ok(), "a decoded frame re-encodes");
      (*wire)[7] = static_cast<char>(f.header.flags);  // EncodeFrame writes flags 0
      Check(std::string_view(*wire) == std::string_view(stream).substr(at, wire->size()),
            "re-encoded frame matches the stream");
      seen.frames.push_back({at, f.header});
      next_frame += kFrameHeaderSize + f.payload.size();
    }
  };

  while (in.remaining_bytes() > 0) {
    // Chunk sizes come from the end of the input, bytes from the front.
    const size_t want = in.ConsumeIntegralInRange<size_t>(0, 4096);
    if (zero_copy) {
      const size_t min_bytes = in.ConsumeIntegralInRange<size_t>(0, 255);
      const std::span<char> tail = decoder.WritableTail(min_bytes);
      Check(tail.size() >= min_bytes, "WritableTail is at least min_bytes");
      const std::string chunk = in.ConsumeBytesAsString(std::min(want, tail.size()));
      if (!chunk.empty()) std::memcpy(tail.data(), chunk.data(), chunk.size());
      decoder.Commit(chunk.size());
      stream += chunk;
    } else {
      const std::string chunk = in.ConsumeBytesAsString(want);
      decoder.Feed(chunk);
      stream += chunk;
    }
    drain();
  }
  drain();

  const Expected want = ReferenceDecode(stream, max_payload);
  Check(seen.error == want.error, "same error as the reference decoder");
  Check(seen.frames.size() == want.frames.size(), "same number of frames as the reference");
  for (size_t i = 0; i < want.frames.size(); ++i) {
    const FrameHeader& a = seen.frames[i].header;
    const FrameHeader& b = want.frames[i].header;
    Check(seen.frames[i].offset == want.frames[i].offset && a.payload_size == b.payload_size &&
              a.method == b.method && a.kind == b.kind && a.flags == b.flags &&
              a.request_id == b.request_id,
          "same frame as the reference");
  }
  if (!failed) {
    Check(decoder.buffered() == stream.size() - want.consumed,
          "buffered() counts the partial frame");
  }
  return 0;
}
