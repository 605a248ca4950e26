// A lane of the UCX backend (internal to this folder): one UCP worker, the
// endpoints it has connected to producers, and the threads waiting on it.
// Lane::Run executes one Pull's share of gets: UCP gets are posted on the
// worker (an endpoint per producer, created on first use with
// UCP_ERR_HANDLING_MODE_PEER) and waited for by spinning on progress, then
// sleeping on the worker's event fd; same-host items are copied with CMA
// (ucx_cma.h) on the calling thread. At the deadline the endpoints of
// unfinished gets are force-closed, which makes UCX complete them. Lane 0's
// worker is the one UcxTransport publishes; its service thread progresses it
// while no Run does (`active_pulls`, `idle_cv`).
//
// Peer and GetOp are the state a Lane shares with UcxTransport::Pull: a Peer
// is one cached endpoint, a GetOp one get (an item, or one stripe of one).
//
// THREAD CONTRACT: thread-safe by the lane's own mutex: every UCX call on
// `worker` happens under `mu` (the worker is UCS_THREAD_MODE_SERIALIZED), and
// so do UCX's callbacks, which run inside those calls. Run may be called from
// many threads at once; Shutdown only once no other thread uses the lane.
//
//   Status s = lane.Run(ops, deadline, options);  // blocks until done, failed or past deadline
#pragma once

#include <ucp/api/ucp.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/common/thread_annotations.h"
#include "ferry/status.h"
#include "ferry/transport/ucx/ucx_transport.h"

namespace ferry::transport {

// One UCP endpoint from one lane's worker to one producer. Shared by the
// lane's cache and by every GetOp posted on it, so that it outlives the ep
// (it is the error callback's argument) and every op that names it.
struct UcxTransport::Peer {
  std::string endpoint;
  ucp_ep_h ep = nullptr;  // invalid once `dropped`
  // Guarded by the lane's mu (the error callback runs inside progress).
  bool failed = false;
  ucs_status_t failure = UCS_OK;
  bool dropped = false;  // out of the cache, close started
};

// One get: a Pull item, or one stripe of an item striped over the lanes.
struct UcxTransport::GetOp {
  // Set by Pull before posting.
  size_t item = 0;
  std::string_view endpoint;  // the whole framed string: the cache key
  std::string_view address;   // the UCP worker address inside it
  std::string_view rkey_bytes;
  uint64_t remote_address = 0;
  void* dst = nullptr;
  uint64_t length = 0;
  std::shared_ptr<CmaPeer> cma;  // set: read with CMA, not UCP
  // Guarded by the lane's mu from posting on.
  Lane* lane = nullptr;
  std::shared_ptr<Peer> peer;
  ucp_rkey_h rkey = nullptr;
  void* request = nullptr;
  bool done = false;
  ucs_status_t ucs = UCS_OK;
  Status error;            // a failure before anything was posted
  bool abandoned = false;  // its endpoint was force-closed at the deadline
  bool leaked = false;     // UCX never completed it: must stay allocated
};

// A worker, the endpoints it has connected, and the state of the threads
// waiting on it. Every UCX call on `worker` happens under `mu`.
struct UcxTransport::Lane {
  int index = 0;
  ucp_worker_h worker = nullptr;
  int efd = -1;

  Mutex mu;
  // Lane 0 only: signalled when active_pulls drops to zero.
  std::condition_variable idle_cv;
  std::map<std::string, std::shared_ptr<Peer>, std::less<>> peers FERRY_GUARDED_BY(mu);
  // Endpoints being force-closed, with their close request.
  std::vector<std::pair<std::shared_ptr<Peer>, void*>> closing FERRY_GUARDED_BY(mu);
  int sleepers FERRY_GUARDED_BY(mu) = 0;  // threads in poll() on efd
  bool wake_sleepers FERRY_GUARDED_BY(mu) = false;
  int active_pulls FERRY_GUARDED_BY(mu) = 0;  // Run calls in progress

  // Posts `ops`, waits for them until `deadline`, cleans up. Never returns
  // while UCX may still write into an op's dst, except for ops it marks
  // `leaked` after close_timeout.
  Status Run(const std::vector<GetOp*>& ops, Deadline deadline, const UcxOptions& o);

  // Closes every endpoint and waits (bounded) for the closes; then destroys
  // the worker. For the destructor: no other thread uses the lane.
  void Shutdown(std::chrono::milliseconds close_timeout);

  unsigned ProgressLocked() FERRY_REQUIRES(mu);
  void PostLocked(GetOp& op) FERRY_REQUIRES(mu);
  StatusOr<std::shared_ptr<Peer>> ConnectLocked(const GetOp& op) FERRY_REQUIRES(mu);
  // By value: callers pass the cache's own pointer, which this erases.
  void DropLocked(std::shared_ptr<Peer> peer) FERRY_REQUIRES(mu);
  void ReapClosesLocked() FERRY_REQUIRES(mu);
  bool WaitAll(const std::vector<GetOp*>& ops, Deadline deadline, const UcxOptions& o);
  bool AbandonLocked(const std::vector<GetOp*>& ops, std::chrono::milliseconds close_timeout)
      FERRY_REQUIRES(mu);
  Status FinishLocked(const std::vector<GetOp*>& ops) FERRY_REQUIRES(mu);

  static bool AllDone(const std::vector<GetOp*>& ops);
  static void OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status);
  static void OnGetDone(void* request, ucs_status_t status, void* user_data);
};

namespace ucx {

// Keeps in `worst` the more telling of `worst` and `s` (InvalidArgument,
// then Unavailable, then DeadlineExceeded, then any other failure): a Pull
// reports the most telling failure of its items.
void KeepWorst(Status& worst, Status s);

// The text of a UCX status, for messages.
std::string Ucs(ucs_status_t s);

}  // namespace ucx
}  // namespace ferry::transport
