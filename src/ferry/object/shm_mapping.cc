#include "ferry/object/shm_mapping.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "ferry/common/logging.h"
#include "ferry/object/shm_segment.h"

namespace ferry::object {
namespace {

// Closes a descriptor unless released; keeps the error paths short.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) close(fd_);
  }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string Describe(const proto::ShmLocation& loc) {
  return "shared-memory segment (pid " + std::to_string(loc.pid()) + ", fd " +
         std::to_string(loc.fd()) + ", " + std::to_string(loc.size()) + " bytes)";
}

}  // namespace

StatusOr<std::shared_ptr<ShmMapping>> ShmMapping::Open(const proto::ShmLocation& location) {
  if (location.pid() <= 0 || location.fd() < 0) {
    return Status::InvalidArgument("malformed location of a " + Describe(location));
  }
  const std::string path = location.pid() == getpid()
                               ? "/proc/self/fd/" + std::to_string(location.fd())
                               : "/proc/" + std::to_string(location.pid()) + "/fd/" +
                                     std::to_string(location.fd());
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ESRCH) {
      return Status::DataLoss("cannot open " + Describe(location) + ": " + path +
                              " does not exist; the producer process exited or freed the object");
    }
    if (err == EACCES || err == EPERM) {
      return Status::PermissionDenied("cannot open " + path + " (" + std::strerror(err) +
                                      "); the producer must run as the same user");
    }
    if (err == EMFILE || err == ENFILE) {
      return Status::ResourceExhausted("open " + path + ": " + std::strerror(err));
    }
    return Status::Internal("open " + path + ": " + std::strerror(err));
  }
  FdCloser closer(fd);

  // The producer's descriptor number could have been reused for another file;
  // check what we opened (race-free: we look at our own descriptor).
  char target[256];
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = readlink(self.c_str(), target, sizeof(target) - 1);
  std::string_view link(target, n > 0 ? static_cast<size_t>(n) : 0);
  const std::string want = std::string("/memfd:") + kSegmentMemfdName;
  if (link.substr(0, want.size()) != want) {
    return Status::InvalidArgument(path + " is not a ferry shared-memory segment (it is \"" +
                                   std::string(link) + "\")");
  }

  struct stat st;
  if (fstat(fd, &st) != 0) return Status::Internal(std::string("fstat: ") + std::strerror(errno));
  if (static_cast<uint64_t>(st.st_size) < location.size()) {
    return Status::DataLoss(Describe(location) + " holds only " + std::to_string(st.st_size) +
                            " bytes");
  }

  // Shared lock first, so the producer cannot hand the segment to a new value
  // between our open and the moment the bytes are mapped.
  while (flock(fd, LOCK_SH) != 0) {
    if (errno != EINTR) return Status::Internal(std::string("flock: ") + std::strerror(errno));
  }

  if (location.size() == 0) {
    return std::shared_ptr<ShmMapping>(new ShmMapping(closer.release(), nullptr, 0));
  }

  // Read-only + MAP_POPULATE fills the page tables without copying; a
  // writable private mapping would be populated by copying every page.
  void* p = mmap(nullptr, location.size(), PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    std::string msg = "mmap of " + Describe(location) + ": " + std::strerror(err);
    if (err == ENOMEM) return Status::ResourceExhausted(std::move(msg));
    return Status::Internal(std::move(msg));
  }
  if (mprotect(p, location.size(), PROT_READ | PROT_WRITE) != 0) {
    int err = errno;
    munmap(p, location.size());
    return Status::Internal("mprotect of " + Describe(location) + ": " + std::strerror(err));
  }
  return std::shared_ptr<ShmMapping>(
      new ShmMapping(closer.release(), static_cast<uint8_t*>(p), location.size()));
}

ShmMapping::~ShmMapping() {
  if (data_ != nullptr && munmap(data_, size_) != 0) {
    FERRY_LOG(ERROR) << "munmap of a shared-memory mapping: " << std::strerror(errno);
  }
  close(fd_);  // drops the shared flock once the mapping is gone too
}

}  // namespace ferry::object
