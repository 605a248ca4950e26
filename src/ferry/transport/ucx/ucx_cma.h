// The UCX backend's same-host reader (internal to this folder): a producer on
// this host, in this pid namespace, is read with process_vm_readv (cross
// memory attach, what UCX's own cma transport does), because UCX 1.13 never
// uses cma for ucp_get_nbx on user memory (README.md "Pull: two data paths").
// A CmaPeer names the producer by pid and holds it open as a pidfd, taken
// only if the process with that pid started when the endpoint says; a read
// counts only if the pidfd shows the producer still alive after it, so a
// recycled pid is never read as the producer. UcxTransport caches one
// CmaPeer per producer (CmaPeerFor, DropCmaPeer, defined in ucx_cma.cc).
//
// THREAD CONTRACT: CmaRead may run on any thread, concurrently with others
// on the same peer; it touches no UCX state and takes no lock. A CmaPeer is
// const after UcxTransport::CmaPeerFor made it, except `denied`, which is
// atomic. The pidfd is closed when the last holder drops its shared_ptr.
//
//   bool denied = false;
//   Status s = CmaRead({peer->pid, peer->pidfd, item, remote, dst, n}, deadline, denied);
//   if (denied) { /* the kernel refused: read this producer with UCP get */ }
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "ferry/common/clock.h"
#include "ferry/status.h"
#include "ferry/transport/ucx/ucx_transport.h"

namespace ferry::transport {

// A same-host producer read with process_vm_readv. Shared by the cache and
// the Pulls using it; the pidfd stays open while any of them holds it.
struct UcxTransport::CmaPeer {
  std::string endpoint;
  pid_t pid = 0;
  int pidfd = -1;                   // this very process, even if its pid is reused
  std::atomic<bool> denied{false};  // the kernel refused (ptrace rules): use UCP

  ~CmaPeer();
};

namespace ucx {

// One copy out of a same-host producer's memory.
struct CmaCopy {
  pid_t pid = 0;    // the producer...
  int pidfd = -1;   // ...held open: checked after the copy
  size_t item = 0;  // the Pull item, for messages
  uint64_t remote_address = 0;
  void* dst = nullptr;
  uint64_t length = 0;
};

// Copies `copy.length` bytes from the producer with process_vm_readv, in
// chunks so the deadline is checked as it goes. Sets `denied` (and returns
// OK) if the kernel does not let this process read the producer: the caller
// then uses UCP instead. Nothing is in flight when it returns.
Status CmaRead(const CmaCopy& copy, Deadline deadline, bool& denied);

}  // namespace ucx
}  // namespace ferry::transport
