#include "ferry/object/shm_segment.h"

#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "ferry/common/logging.h"

namespace ferry::object {
namespace {

Status ErrnoStatus(const char* what, int err) {
  std::string msg = std::string(what) + ": " + std::strerror(err);
  if (err == ENOMEM || err == ENOSPC || err == EMFILE || err == ENFILE) {
    return Status::ResourceExhausted(std::move(msg));
  }
  return Status::Internal(std::move(msg));
}

}  // namespace

StatusOr<std::unique_ptr<ShmSegment>> ShmSegment::Create(uint64_t capacity) {
  if (capacity == 0) return Status::InvalidArgument("ShmSegment capacity must be > 0");
  if (capacity > static_cast<uint64_t>(INT64_MAX)) {
    return Status::InvalidArgument("ShmSegment capacity " + std::to_string(capacity) +
                                   " is too large");
  }
  int fd = memfd_create(kSegmentMemfdName, MFD_CLOEXEC);
  if (fd < 0) return ErrnoStatus("memfd_create", errno);
  if (ftruncate(fd, static_cast<off_t>(capacity)) != 0) {
    int err = errno;
    close(fd);
    return ErrnoStatus("ftruncate of a shared-memory segment", err);
  }
  void* p = mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    close(fd);
    return ErrnoStatus("mmap of a shared-memory segment", err);
  }
  return std::unique_ptr<ShmSegment>(new ShmSegment(fd, static_cast<uint8_t*>(p), capacity));
}

ShmSegment::~ShmSegment() {
  if (munmap(data_, capacity_) != 0) {
    FERRY_LOG(ERROR) << "munmap of a shared-memory segment: " << std::strerror(errno);
  }
  close(fd_);
}

proto::ShmLocation ShmSegment::Location(uint64_t used_size) const {
  FERRY_CHECK(used_size <= capacity_) << used_size << " > capacity " << capacity_;
  proto::ShmLocation loc;
  loc.set_pid(static_cast<int32_t>(getpid()));
  loc.set_fd(fd_);
  loc.set_size(used_size);
  return loc;
}

bool ShmSegment::NoReaders() const {
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0) return false;  // EWOULDBLOCK: a reader holds LOCK_SH
  flock(fd_, LOCK_UN);
  return true;
}

}  // namespace ferry::object
