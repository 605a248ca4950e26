// The wire format of every control-plane connection: a fixed 16-byte
// little-endian header followed by `payload_size` bytes (a serialized
// protobuf message chosen by `method`).
//
//   offset 0  uint32 payload_size
//   offset 4  uint16 method        (proto::Method)
//   offset 6  uint8  kind          (FrameKind)
//   offset 7  uint8  flags         (reserved, 0)
//   offset 8  uint64 request_id    (echoed by the reply; 0 for one-way frames)
//
// Lifecycle: EncodeFrame() is a pure function. A FrameDecoder lives as long as
// the byte stream it decodes; once it reports an error the error is sticky
// (the stream cannot be resynchronized, so the connection must be dropped).
//
// THREAD CONTRACT: EncodeFrame is thread-safe. A FrameDecoder is a value
// confined to one thread (a Channel keeps it on its io thread); it is a pure
// function of the bytes fed to it, so it can be fuzzed directly.
//
//   FrameDecoder decoder;
//   FERRY_ASSIGN_OR_RETURN(std::string wire, EncodeFrame(proto::HELLO, FrameKind::kRequest, 7,
//   hello)); decoder.Feed(wire); Frame frame; while (decoder.Next(&frame).value())
//   Handle(frame.header, frame.payload);
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace google::protobuf {
class MessageLite;
}  // namespace google::protobuf

namespace ferry::rpc {

inline constexpr size_t kFrameHeaderSize = 16;
// Default bound on one frame's payload; a larger announced size is a protocol
// error (it protects a process from a corrupt or hostile length prefix).
inline constexpr uint32_t kDefaultMaxPayload = uint32_t{1} << 30;
// Bound on a connection's first frame (the Hello) before it authenticated: an
// unauthenticated peer cannot make a process buffer more than this.
inline constexpr uint32_t kMaxFirstFramePayload = 64 * 1024;

enum class FrameKind : uint8_t {
  kRequest = 0,     // expects exactly one kReply or kErrorReply with the same id
  kReply = 1,       // payload = the method's reply message
  kErrorReply = 2,  // payload = proto::StatusProto
  kOneWay = 3,      // no reply; request_id is 0
};

// True for the four kinds above.
bool IsKnownFrameKind(uint8_t kind);

struct FrameHeader {
  uint32_t payload_size = 0;
  uint16_t method = 0;
  FrameKind kind = FrameKind::kRequest;
  uint8_t flags = 0;
  uint64_t request_id = 0;
};

// Writes `header` into out[0, kFrameHeaderSize).
void EncodeFrameHeader(const FrameHeader& header, char* out);
// Reads a header from in[0, kFrameHeaderSize). Does not validate the kind.
FrameHeader DecodeFrameHeader(const char* in);

// Header + serialized `message` in one buffer (ready for a single send(2)).
// InvalidArgument if the message is larger than `max_payload`.
StatusOr<std::string> EncodeFrame(uint16_t method, FrameKind kind, uint64_t request_id,
                                  const google::protobuf::MessageLite& message,
                                  uint32_t max_payload = kDefaultMaxPayload);
// Same with an already-serialized payload.
StatusOr<std::string> EncodeFrame(uint16_t method, FrameKind kind, uint64_t request_id,
                                  std::string_view payload,
                                  uint32_t max_payload = kDefaultMaxPayload);

// One decoded frame. `payload` points into the decoder's buffer and stays
// valid until the next Feed / WritableTail / Commit call (Next() does not
// invalidate earlier frames).
struct Frame {
  FrameHeader header;
  std::string_view payload;
};

// Incremental decoder: bytes in (any split), whole frames out.
//
// Two ways to feed it: Feed(bytes) copies (simple; what tests and fuzzers
// use), or WritableTail() + Commit(n) lets a socket read straight into the
// decoder's buffer (what Channel uses: no copy, and a large frame lands in one
// contiguous buffer sized for it).
class FrameDecoder {
 public:
  explicit FrameDecoder(uint32_t max_payload = kDefaultMaxPayload);
  // Changes the bound for frames not yet started (e.g. raised after a
  // connection authenticated).
  void set_max_payload(uint32_t max_payload) { max_payload_ = max_payload; }
  ~FrameDecoder();
  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;

  // Appends `bytes` to the stream.
  void Feed(std::string_view bytes);

  // A writable region of at least `min_bytes` (more when a partly received
  // frame needs more) at the end of the buffered bytes. Pass what was written
  // to Commit().
  std::span<char> WritableTail(size_t min_bytes);
  void Commit(size_t n);

  // Returns true and fills *frame when a complete frame is buffered, false
  // when more bytes are needed, or an error (sticky) when the stream is
  // malformed: ResourceExhausted for a payload above max_payload,
  // InvalidArgument for an unknown frame kind.
  StatusOr<bool> Next(Frame* frame);

  // Bytes received but not yet returned as frames.
  size_t buffered() const { return end_ - begin_; }
  size_t capacity() const { return capacity_; }

 private:
  struct Free {
    void operator()(char* p) const;
  };
  void Reserve(size_t want);
  // Bytes needed in [begin_, ...) to complete the frame at begin_, or
  // kFrameHeaderSize while its header is incomplete.
  size_t NeededForCurrentFrame() const;

  uint32_t max_payload_;
  std::unique_ptr<char, Free> buf_;
  size_t capacity_ = 0;
  size_t begin_ = 0;  // first byte not yet returned as a frame
  size_t end_ = 0;    // one past the last received byte
  Status error_;
};

}  // namespace ferry::rpc
