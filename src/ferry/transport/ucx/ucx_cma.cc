#include "ferry/transport/ucx/ucx_cma.h"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "ferry/transport/ucx/ucx_descriptor.h"

namespace ferry::transport {
namespace {

// One process_vm_readv call copies at most this much, so a long copy checks
// its deadline every millisecond or so.
constexpr uint64_t kCmaChunk = 2 << 20;

int PidfdOpen(uint64_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
}

// True once the process behind `pidfd` has exited.
bool Exited(int pidfd) {
  struct pollfd pfd {
    pidfd, POLLIN, 0
  };
  return poll(&pfd, 1, 0) > 0;
}

}  // namespace

UcxTransport::CmaPeer::~CmaPeer() {
  if (pidfd >= 0) close(pidfd);
}

StatusOr<std::shared_ptr<UcxTransport::CmaPeer>> UcxTransport::CmaPeerFor(std::string_view endpoint,
                                                                          uint64_t pid,
                                                                          uint64_t start_time) {
  MutexLock lock(cma_mu_);
  auto it = cma_peers_.find(endpoint);
  if (it != cma_peers_.end()) {
    if (!Exited(it->second->pidfd)) return it->second;
    cma_peers_.erase(it);
  }
  const std::string what = "ucx transport: producer pid " + std::to_string(pid);
  auto peer = std::make_shared<CmaPeer>();
  peer->endpoint = std::string(endpoint);
  peer->pid = static_cast<pid_t>(pid);
  peer->pidfd = PidfdOpen(pid);
  if (peer->pidfd < 0) {
    if (errno == ESRCH) return Status::Unavailable(what + " is gone");
    return Status::Aborted(what + ": pidfd_open: " + std::strerror(errno));
  }
  // pidfd_open took whichever process has the pid now; it is the producer
  // only if it started when the producer did.
  if (ucx::ProcessStartTime(pid) != start_time)
    return Status::Unavailable(what + " is gone (the pid was reused)");
  cma_peers_.emplace(peer->endpoint, peer);
  return peer;
}

void UcxTransport::DropCmaPeer(const std::shared_ptr<CmaPeer>& peer) {
  MutexLock lock(cma_mu_);
  auto it = cma_peers_.find(peer->endpoint);
  if (it != cma_peers_.end() && it->second == peer) cma_peers_.erase(it);
}

namespace ucx {

Status CmaRead(const CmaCopy& copy, Deadline deadline, bool& denied) {
  const std::string what = "ucx transport: cma read of item " + std::to_string(copy.item) + " (" +
                           std::to_string(copy.length) + " bytes) from pid " +
                           std::to_string(copy.pid);
  denied = false;
  char* dst = static_cast<char*>(copy.dst);
  uint64_t done = 0;
  while (done < copy.length) {
    if (deadline.Expired())
      return Status::DeadlineExceeded(what + ": not completed by the deadline");
    const uint64_t n = std::min(kCmaChunk, copy.length - done);
    struct iovec local {
      dst + done, n
    };
    struct iovec remote {
      reinterpret_cast<void*>(copy.remote_address + done), n
    };
    const ssize_t got = process_vm_readv(copy.pid, &local, 1, &remote, 1, 0);
    if (got > 0) {
      done += static_cast<uint64_t>(got);
      continue;
    }
    const int err = got < 0 ? errno : EIO;
    if (err == EINTR) continue;
    if (err == EPERM) {
      denied = true;
      return Status::Ok();
    }
    if (err == ESRCH) return Status::Unavailable(what + ": the producer process is gone");
    if (err == ENOMEM) return Status::ResourceExhausted(what + ": " + std::strerror(err));
    // EFAULT: the range is not mapped in the producer (released early?).
    return Status::Aborted(what + ": " + std::strerror(err));
  }
  // The pid named this process when the read started; if it has exited
  // since, the bytes may come from whoever got the pid next.
  if (Exited(copy.pidfd)) return Status::Unavailable(what + ": the producer process exited");
  return Status::Ok();
}

}  // namespace ucx
}  // namespace ferry::transport
