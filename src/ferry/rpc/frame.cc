#include "ferry/rpc/frame.h"

#include <google/protobuf/message_lite.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "ferry/common/logging.h"

namespace ferry::rpc {
namespace {

// A new decoder buffer holds this much; one read(2) of a busy channel fits.
constexpr size_t kInitialCapacity = 64 * 1024;
// An empty buffer above this size is given back rather than kept for reuse, so
// one huge frame does not pin its memory for the channel's lifetime. Buffers
// up to it are kept warm: faulting in fresh pages costs far more than reuse.
constexpr size_t kKeepCapacity = 64 * 1024 * 1024;
// Buffers from this size up are 2 MiB aligned and marked MADV_HUGEPAGE, which
// makes first-touch page faults several times cheaper (docs/architecture.md,
// "Measured facts").
constexpr size_t kHugePageThreshold = 4 * 1024 * 1024;
constexpr size_t kHugePage = 2 * 1024 * 1024;

void StoreLe16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v);
  p[1] = static_cast<char>(v >> 8);
}
void StoreLe32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void StoreLe64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint64_t LoadLe(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

char* Allocate(size_t size) {
  void* p = nullptr;
  if (size >= kHugePageThreshold) {
    size = (size + kHugePage - 1) / kHugePage * kHugePage;
    p = std::aligned_alloc(kHugePage, size);
    if (p != nullptr) ::madvise(p, size, MADV_HUGEPAGE);
  } else {
    p = std::malloc(size);
  }
  FERRY_CHECK(p != nullptr) << "out of memory allocating a " << size << "-byte frame buffer";
  return static_cast<char*>(p);
}

size_t RoundedCapacity(size_t size) {
  return size >= kHugePageThreshold ? (size + kHugePage - 1) / kHugePage * kHugePage : size;
}

Status CheckPayloadSize(size_t size, uint32_t max_payload) {
  if (size > max_payload) {
    return Status::InvalidArgument("frame payload of " + std::to_string(size) +
                                   " bytes exceeds the limit of " + std::to_string(max_payload));
  }
  return Status::Ok();
}

}  // namespace

bool IsKnownFrameKind(uint8_t kind) { return kind <= static_cast<uint8_t>(FrameKind::kOneWay); }

void EncodeFrameHeader(const FrameHeader& header, char* out) {
  StoreLe32(out, header.payload_size);
  StoreLe16(out + 4, header.method);
  out[6] = static_cast<char>(header.kind);
  out[7] = static_cast<char>(header.flags);
  StoreLe64(out + 8, header.request_id);
}

FrameHeader DecodeFrameHeader(const char* in) {
  FrameHeader h;
  h.payload_size = static_cast<uint32_t>(LoadLe(in, 4));
  h.method = static_cast<uint16_t>(LoadLe(in + 4, 2));
  h.kind = static_cast<FrameKind>(static_cast<uint8_t>(in[6]));
  h.flags = static_cast<uint8_t>(in[7]);
  h.request_id = LoadLe(in + 8, 8);
  return h;
}

StatusOr<std::string> EncodeFrame(uint16_t method, FrameKind kind, uint64_t request_id,
                                  const google::protobuf::MessageLite& message,
                                  uint32_t max_payload) {
  const size_t size = message.ByteSizeLong();
  FERRY_RETURN_IF_ERROR(CheckPayloadSize(size, max_payload));
  // Sized once and serialized in place: header and payload share one buffer.
  std::string out;
  out.resize(kFrameHeaderSize + size);
  EncodeFrameHeader({static_cast<uint32_t>(size), method, kind, 0, request_id}, out.data());
  message.SerializeWithCachedSizesToArray(
      reinterpret_cast<uint8_t*>(out.data() + kFrameHeaderSize));
  return out;
}

StatusOr<std::string> EncodeFrame(uint16_t method, FrameKind kind, uint64_t request_id,
                                  std::string_view payload, uint32_t max_payload) {
  FERRY_RETURN_IF_ERROR(CheckPayloadSize(payload.size(), max_payload));
  std::string out;
  out.resize(kFrameHeaderSize + payload.size());
  EncodeFrameHeader({static_cast<uint32_t>(payload.size()), method, kind, 0, request_id},
                    out.data());
  if (!payload.empty()) std::memcpy(out.data() + kFrameHeaderSize, payload.data(), payload.size());
  return out;
}

void FrameDecoder::Free::operator()(char* p) const { std::free(p); }

FrameDecoder::FrameDecoder(uint32_t max_payload) : max_payload_(max_payload) {}
FrameDecoder::~FrameDecoder() = default;

size_t FrameDecoder::NeededForCurrentFrame() const {
  const size_t have = end_ - begin_;
  if (have < kFrameHeaderSize) return kFrameHeaderSize;
  const char* p = buf_.get() + begin_;
  const uint32_t payload = static_cast<uint32_t>(LoadLe(p, 4));
  // A malformed header is reported by Next(); never allocate for it.
  if (payload > max_payload_ || !IsKnownFrameKind(static_cast<uint8_t>(p[6]))) {
    return kFrameHeaderSize;
  }
  return kFrameHeaderSize + payload;
}

void FrameDecoder::Reserve(size_t want) {
  const size_t have = end_ - begin_;
  if (have == 0 && capacity_ > kKeepCapacity && want <= kKeepCapacity) {
    buf_.reset();
    capacity_ = 0;
    begin_ = end_ = 0;
  }
  if (capacity_ - end_ >= want) return;
  if (begin_ > 0 && capacity_ - have >= want) {
    // Room exists once consumed bytes are dropped: slide the partial frame
    // to the front (small: at most one incomplete frame is ever buffered here).
    std::memmove(buf_.get(), buf_.get() + begin_, have);
    begin_ = 0;
    end_ = have;
    return;
  }
  size_t new_capacity = std::max({kInitialCapacity, have + want, capacity_ * 2});
  // Doubling is for streams of small frames; a large frame gets exactly its
  // size (plus a read's worth), not twice it.
  if (have + want > kKeepCapacity) new_capacity = have + want;
  new_capacity = RoundedCapacity(new_capacity);
  std::unique_ptr<char, Free> fresh(Allocate(new_capacity));
  if (have > 0) std::memcpy(fresh.get(), buf_.get() + begin_, have);
  buf_ = std::move(fresh);
  capacity_ = new_capacity;
  begin_ = 0;
  end_ = have;
}

void FrameDecoder::Feed(std::string_view bytes) {
  if (bytes.empty()) return;
  Reserve(bytes.size());
  std::memcpy(buf_.get() + end_, bytes.data(), bytes.size());
  end_ += bytes.size();
}

std::span<char> FrameDecoder::WritableTail(size_t min_bytes) {
  const size_t have = end_ - begin_;
  const size_t needed = NeededForCurrentFrame();
  const size_t missing = needed > have ? needed - have : 0;
  Reserve(std::max(min_bytes, missing));
  return {buf_.get() + end_, capacity_ - end_};
}

void FrameDecoder::Commit(size_t n) {
  FERRY_CHECK(n <= capacity_ - end_) << "committed " << n << " bytes beyond the writable tail";
  end_ += n;
}

StatusOr<bool> FrameDecoder::Next(Frame* frame) {
  if (!error_.ok()) return error_;
  const size_t have = end_ - begin_;
  if (have < kFrameHeaderSize) {
    if (have == 0) begin_ = end_ = 0;  // cheap rewind; no bytes move
    return false;
  }
  const char* p = buf_.get() + begin_;
  FrameHeader header = DecodeFrameHeader(p);
  if (!IsKnownFrameKind(static_cast<uint8_t>(header.kind))) {
    error_ = Status::InvalidArgument("malformed frame: unknown kind " +
                                     std::to_string(static_cast<int>(header.kind)));
    return error_;
  }
  if (header.payload_size > max_payload_) {
    error_ = Status::ResourceExhausted("frame payload of " + std::to_string(header.payload_size) +
                                       " bytes exceeds the limit of " +
                                       std::to_string(max_payload_));
    return error_;
  }
  if (have < kFrameHeaderSize + header.payload_size) return false;
  frame->header = header;
  frame->payload = std::string_view(p + kFrameHeaderSize, header.payload_size);
  begin_ += kFrameHeaderSize + header.payload_size;
  return true;
}

}  // namespace ferry::rpc
