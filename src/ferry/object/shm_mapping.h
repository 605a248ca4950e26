// ShmMapping: a reader's private, copy-on-write view of a producer's
// shared-memory segment (ShmSegment), opened from a proto::ShmLocation.
//
// Lifecycle: Open() opens /proc/<pid>/fd/<fd> read-only (works for this
// process too), checks that it is a ferry memfd at least `size` bytes long,
// takes a shared flock on its own descriptor (the producer's SegmentPool will
// not reuse the segment while any reader holds it), maps it MAP_PRIVATE with
// MAP_POPULATE (page tables filled up front, no page copied) and then makes
// the mapping writable. Writes copy the touched page privately and never reach
// the producer or other readers. The destructor unmaps and closes the
// descriptor, which drops the lock; a crashed reader drops it too.
//
// THREAD CONTRACT: immutable after Open; thread-safe. Share it by
// shared_ptr: whoever wraps the bytes (a numpy array, a tensor) holds one.
//
//   FERRY_ASSIGN_OR_RETURN(std::shared_ptr<ShmMapping> m, ShmMapping::Open(value.shm()));
//   std::span<uint8_t> bytes(m->data(), m->size());   // writable, private
//   bytes[0] = 1;                                      // the producer still sees its byte
//   Use(bytes, /*keep_alive=*/m);
//   m.reset();                                          // unmaps, unlocks
#pragma once

#include <cstdint>
#include <memory>

#include "ferry/proto/ferry.pb.h"
#include "ferry/status.h"

namespace ferry::object {

class ShmMapping {
 public:
  // Errors: DataLoss if the producer process is gone or no longer holds the
  // descriptor, or the segment is shorter than `location.size`;
  // InvalidArgument if the descriptor is not a ferry segment or the location
  // is malformed; PermissionDenied if /proc denies access; ResourceExhausted
  // when out of descriptors or address space.
  static StatusOr<std::shared_ptr<ShmMapping>> Open(const proto::ShmLocation& location);

  ~ShmMapping();
  ShmMapping(const ShmMapping&) = delete;
  ShmMapping& operator=(const ShmMapping&) = delete;

  // Writable copy-on-write bytes; nullptr when size() == 0.
  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  ShmMapping(int fd, uint8_t* data, uint64_t size) : fd_(fd), data_(data), size_(size) {}

  const int fd_;
  uint8_t* const data_;
  const uint64_t size_;
};

}  // namespace ferry::object
