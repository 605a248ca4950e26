// ShmSegment: the producer's side of a shared-memory value — an anonymous
// memfd plus a read-write MAP_SHARED mapping of it.
//
// Lifecycle: Create() makes the memfd (MFD_CLOEXEC; nothing ever appears in
// /dev/shm, and the memory goes away with the last descriptor or mapping),
// sizes it and maps it. The producer writes the value, publishes Location()
// and keeps the segment alive (LocalSegments) until the owner frees the
// object; it then goes back to a SegmentPool for reuse. Readers in other
// processes open /proc/<pid>/fd/<fd> (ShmMapping) and take a shared flock on
// their own descriptor, which is how the pool learns that a reader still
// maps the bytes. The destructor unmaps and closes.
//
// THREAD CONTRACT: externally synchronized. Accessors are const after
// construction; the bytes are written by one producer thread before the
// location is published.
//
//   FERRY_ASSIGN_OR_RETURN(std::unique_ptr<ShmSegment> seg, ShmSegment::Create(1 << 20));
//   std::memcpy(seg->data(), bytes.data(), bytes.size());
//   proto::ShmLocation loc = seg->Location(bytes.size());
//   SendToReader(loc);                           // reader: ShmMapping::Open(loc)
//   segments.Put(id, std::move(seg));            // keep it until the object is freed
#pragma once

#include <cstdint>
#include <memory>

#include "ferry/proto/ferry.pb.h"
#include "ferry/status.h"

namespace ferry::object {

// The memfd name; readers check that a descriptor they open carries it.
inline constexpr const char kSegmentMemfdName[] = "ferry-segment";

class ShmSegment {
 public:
  // Creates a zero-filled segment of `capacity` (> 0) bytes. The pages are
  // not touched: the first write to each costs a page fault, which is why
  // SegmentPool reuses segments.
  static StatusOr<std::unique_ptr<ShmSegment>> Create(uint64_t capacity);

  ~ShmSegment();
  ShmSegment(const ShmSegment&) = delete;
  ShmSegment& operator=(const ShmSegment&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t capacity() const { return capacity_; }
  // The memfd, owned by this segment; valid until destruction.
  int fd() const { return fd_; }

  // Where a reader finds the first `used_size` bytes (pid = this process,
  // fd, size = used_size, node_id left empty for the caller to fill).
  proto::ShmLocation Location(uint64_t used_size) const;

  // True if no reader holds a shared flock on the memfd right now, i.e. no
  // ShmMapping of it is open in any process. Takes and drops an exclusive
  // non-blocking flock on the producer's own descriptor.
  bool NoReaders() const;

 private:
  ShmSegment(int fd, uint8_t* data, uint64_t capacity)
      : fd_(fd), data_(data), capacity_(capacity) {}

  const int fd_;
  uint8_t* const data_;
  const uint64_t capacity_;
};

}  // namespace ferry::object
