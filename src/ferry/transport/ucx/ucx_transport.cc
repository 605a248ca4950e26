#include "ferry/transport/ucx/ucx_transport.h"

#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <ucp/api/ucp.h>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"

#if defined(__SANITIZE_THREAD__)
#define FERRY_UCX_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FERRY_UCX_UNDER_TSAN 1
#endif
#endif

namespace ferry::transport {
namespace {

#ifdef FERRY_UCX_UNDER_TSAN
constexpr bool kUnderTsan = true;
#else
constexpr bool kUnderTsan = false;
#endif

// Wire formats. Both ends run the same build on the same architecture (the
// endpoint carries a UCX worker address, which has the same requirement), so
// the fixed-size headers are copied in native byte order. The magic numbers
// catch strings made by another backend or truncated on the way.
constexpr uint32_t kEndpointMagic = 0x32585546;    // "FUX2"
constexpr uint32_t kDescriptorMagic = 0x44585546;  // "FUXD"
constexpr size_t kHostKeyLen = 48;                 // boot id + pid namespace

struct EndpointHeader {
  uint32_t magic;
  uint32_t address_len;
  uint64_t pid;         // the producer process...
  uint64_t start_time;  // ...and when it started: a recycled pid differs here
  char host_key[kHostKeyLen];  // equal only within one boot and pid namespace
};

struct DescriptorHeader {
  uint32_t magic;
  uint32_t rkey_len;
  uint64_t address;
  uint64_t length;
};

struct Descriptor {
  uint64_t address = 0;
  uint64_t length = 0;
  std::string_view rkey;
};

struct Endpoint {
  uint64_t pid = 0;
  uint64_t start_time = 0;
  std::string_view host_key;
  std::string_view address;  // the UCP worker address
};

std::string EncodeEndpoint(uint64_t pid, uint64_t start_time, const std::string& host_key, const void* address,
                           size_t len) {
  EndpointHeader h{};
  h.magic = kEndpointMagic;
  h.address_len = static_cast<uint32_t>(len);
  h.pid = pid;
  h.start_time = start_time;
  std::memcpy(h.host_key, host_key.data(), std::min(host_key.size(), kHostKeyLen));
  std::string out(sizeof(h) + len, '\0');
  std::memcpy(out.data(), &h, sizeof(h));
  std::memcpy(out.data() + sizeof(h), address, len);
  return out;
}

StatusOr<Endpoint> ParseEndpoint(std::string_view endpoint) {
  EndpointHeader h;
  if (endpoint.size() < sizeof(h)) {
    return Status::InvalidArgument("ucx transport: endpoint of " + std::to_string(endpoint.size()) +
                                   " bytes is too short");
  }
  std::memcpy(&h, endpoint.data(), sizeof(h));
  if (h.magic != kEndpointMagic || h.address_len == 0 || endpoint.size() != sizeof(h) + h.address_len) {
    return Status::InvalidArgument("ucx transport: malformed endpoint (not made by the ucx backend)");
  }
  Endpoint e;
  e.pid = h.pid;
  e.start_time = h.start_time;
  e.host_key = endpoint.substr(offsetof(EndpointHeader, host_key), kHostKeyLen);
  e.address = endpoint.substr(sizeof(h));
  return e;
}

// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks
// since boot. 0 if unreadable.
uint64_t ProcessStartTime(uint64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t comm_end = stat.rfind(')');  // the command name may hold spaces
  if (comm_end == std::string::npos) return 0;
  std::istringstream fields(stat.substr(comm_end + 1));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(fields >> field)) return 0;
  }
  return std::strtoull(field.c_str(), nullptr, 10);
}

// Names this kernel boot and pid namespace: two processes with the same key
// can name each other by pid. Empty if it cannot be read.
std::string HostKey() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string boot_id;
  struct stat ns;
  if (!(in >> boot_id) || boot_id.empty() || stat("/proc/self/ns/pid", &ns) != 0) return "";
  std::string key = boot_id + "/" + std::to_string(ns.st_ino);
  key.resize(kHostKeyLen, '\0');
  return key;
}

std::string EncodeDescriptor(uint64_t address, uint64_t length, const void* rkey, size_t rkey_len) {
  DescriptorHeader h{kDescriptorMagic, static_cast<uint32_t>(rkey_len), address, length};
  std::string out(sizeof(h) + rkey_len, '\0');
  std::memcpy(out.data(), &h, sizeof(h));
  if (rkey_len > 0) std::memcpy(out.data() + sizeof(h), rkey, rkey_len);
  return out;
}

StatusOr<Descriptor> ParseDescriptor(std::string_view descriptor) {
  DescriptorHeader h;
  if (descriptor.size() < sizeof(h)) {
    return Status::InvalidArgument("ucx transport: descriptor of " + std::to_string(descriptor.size()) +
                                   " bytes is too short");
  }
  std::memcpy(&h, descriptor.data(), sizeof(h));
  const bool consistent = h.magic == kDescriptorMagic && descriptor.size() == sizeof(h) + h.rkey_len &&
                          (h.length == 0 || h.rkey_len > 0);
  if (!consistent) return Status::InvalidArgument("ucx transport: malformed descriptor (not made by the ucx backend)");
  return Descriptor{h.address, h.length, descriptor.substr(sizeof(h))};
}

// Statuses with which UCX reports that the other process cannot be reached
// any more (it exited, was killed, or its connection broke).
bool IsPeerGone(ucs_status_t s) {
  switch (s) {
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_REJECTED:
    case UCS_ERR_SHMEM_SEGMENT:
      return true;
    default:
      return false;
  }
}

// How much a failure tells the caller; Pull reports the most telling one.
int Severity(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return 0;
    case StatusCode::kInvalidArgument:
      return 4;  // the caller's mistake: fix it, don't retry
    case StatusCode::kUnavailable:
      return 3;  // the producer is gone
    case StatusCode::kDeadlineExceeded:
      return 2;
    default:
      return 1;
  }
}

void KeepWorst(Status& worst, Status s) {
  if (Severity(s) > Severity(worst)) worst = std::move(s);
}

std::string Ucs(ucs_status_t s) { return ucs_status_string(s); }

// Bound on one sleep of the service thread; the destructor wakes it sooner.
constexpr int kServeSleepMs = 1000;
// Stripes of a split item start on this alignment.
constexpr uint64_t kStripeAlign = 64 * 1024;
constexpr int kMaxLanes = 16;
// One process_vm_readv call copies at most this much, so a long copy checks
// its deadline every millisecond or so.
constexpr uint64_t kCmaChunk = 2 << 20;

int PidfdOpen(uint64_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0)); }

// True once the process behind `pidfd` has exited.
bool Exited(int pidfd) {
  struct pollfd pfd{pidfd, POLLIN, 0};
  return poll(&pfd, 1, 0) > 0;
}

}  // namespace

UcxOptions UcxOptions::FromEnv() {
  UcxOptions o;
  o.pull_lanes = static_cast<int>(EnvInt("FERRY_UCX_PULL_LANES", o.pull_lanes));
  o.stripe_min_bytes = static_cast<uint64_t>(
      std::max<int64_t>(0, EnvInt("FERRY_UCX_STRIPE_MIN_BYTES", static_cast<int64_t>(o.stripe_min_bytes))));
  o.spin = std::chrono::microseconds(std::max<int64_t>(0, EnvInt("FERRY_UCX_SPIN_US", o.spin.count())));
  o.max_sleep = ClampedMillis(EnvInt("FERRY_UCX_MAX_SLEEP_MS", o.max_sleep.count()));
  o.close_timeout = ClampedMillis(EnvInt("FERRY_UCX_CLOSE_TIMEOUT_MS", o.close_timeout.count()));
  o.same_host_cma = EnvInt("FERRY_UCX_CMA", o.same_host_cma ? 1 : 0) != 0;
  o.default_tls = EnvString("FERRY_UCX_TLS", o.default_tls);
  return o;
}

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

// A same-host producer read with process_vm_readv. Shared by the cache and
// the Pulls using it; the pidfd stays open while any of them holds it.
struct UcxTransport::CmaPeer {
  std::string endpoint;
  pid_t pid = 0;
  int pidfd = -1;                 // this very process, even if its pid is reused
  std::atomic<bool> denied{false};  // the kernel refused (ptrace rules): use UCP

  ~CmaPeer() {
    if (pidfd >= 0) close(pidfd);
  }
};

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
  int sleepers FERRY_GUARDED_BY(mu) = 0;      // threads in poll() on efd
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
  bool AbandonLocked(const std::vector<GetOp*>& ops, std::chrono::milliseconds close_timeout) FERRY_REQUIRES(mu);
  Status FinishLocked(const std::vector<GetOp*>& ops) FERRY_REQUIRES(mu);

  static bool AllDone(const std::vector<GetOp*>& ops);
  static void OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status);
  static void OnGetDone(void* request, ucs_status_t status, void* user_data);
};

// Runs inside ucp_worker_progress (or another UCX call), so under the lane's
// mu. UCX has already failed the ep's outstanding requests; the ep itself is
// closed by the next Pull that sees `failed`.
void UcxTransport::Lane::OnEndpointError(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
  auto* peer = static_cast<Peer*>(arg);
  peer->failed = true;
  peer->failure = status;
}

// Runs inside UCX calls made under the lane's mu.
void UcxTransport::Lane::OnGetDone(void* /*request*/, ucs_status_t status, void* user_data) {
  auto* op = static_cast<GetOp*>(user_data);
  op->done = true;
  op->ucs = status;
  if (op->lane->sleepers > 0) op->lane->wake_sleepers = true;
}

bool UcxTransport::Lane::AllDone(const std::vector<GetOp*>& ops) {
  return std::all_of(ops.begin(), ops.end(), [](const GetOp* op) { return op->done; });
}

unsigned UcxTransport::Lane::ProgressLocked() {
  const unsigned n = ucp_worker_progress(worker);
  if (!closing.empty()) ReapClosesLocked();
  if (wake_sleepers) {
    // A sleeping Pull's get completed: poll() would not see it otherwise.
    wake_sleepers = false;
    ucp_worker_signal(worker);
  }
  return n;
}

StatusOr<std::shared_ptr<UcxTransport::Peer>> UcxTransport::Lane::ConnectLocked(const GetOp& op) {
  auto it = peers.find(op.endpoint);
  if (it != peers.end()) {
    if (!it->second->failed) return it->second;
    DropLocked(it->second);  // failed since its last use: reconnect
  }
  auto peer = std::make_shared<Peer>();
  peer->endpoint = std::string(op.endpoint);
  ucp_ep_params_t params{};
  params.field_mask =
      UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(op.address.data());
  params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  params.err_handler.cb = &Lane::OnEndpointError;
  params.err_handler.arg = peer.get();
  ucs_status_t s = ucp_ep_create(worker, &params, &peer->ep);
  if (s != UCS_OK) {
    // The address parsed, so the producer is not reachable: gone, or on a
    // host none of the enabled UCX transports reach.
    return Status::Unavailable("ucx transport: cannot connect to the producer: " + Ucs(s));
  }
  peers.emplace(peer->endpoint, peer);
  return peer;
}

void UcxTransport::Lane::DropLocked(std::shared_ptr<Peer> peer) {
  if (peer->dropped) return;
  peer->dropped = true;
  auto it = peers.find(peer->endpoint);
  if (it != peers.end() && it->second == peer) peers.erase(it);
  // FORCE: complete (cancel) whatever is outstanding at once, without asking
  // the peer, which may be gone. Every ep was created with
  // UCP_ERR_HANDLING_MODE_PEER, as FORCE requires.
  ucp_request_param_t params{};
  params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  params.flags = UCP_EP_CLOSE_FLAG_FORCE;
  ucs_status_ptr_t r = ucp_ep_close_nbx(peer->ep, &params);
  peer->ep = nullptr;
  if (UCS_PTR_IS_PTR(r)) closing.emplace_back(peer, r);
  // NULL: closed at once; an error: the ep is released all the same.
}

void UcxTransport::Lane::ReapClosesLocked() {
  auto done = [](const std::pair<std::shared_ptr<Peer>, void*>& c) {
    if (ucp_request_check_status(c.second) == UCS_INPROGRESS) return false;
    ucp_request_free(c.second);
    return true;
  };
  closing.erase(std::remove_if(closing.begin(), closing.end(), done), closing.end());
}

void UcxTransport::Lane::PostLocked(GetOp& op) {
  op.lane = this;
  auto peer = ConnectLocked(op);
  if (!peer.ok()) {
    op.error = peer.status();
    op.done = true;
    return;
  }
  op.peer = *std::move(peer);
  ucs_status_t s = ucp_ep_rkey_unpack(op.peer->ep, op.rkey_bytes.data(), &op.rkey);
  if (s != UCS_OK) {
    op.rkey = nullptr;
    op.error = Status::InvalidArgument("ucx transport: item " + std::to_string(op.item) +
                                       ": the descriptor's remote key does not unpack: " + Ucs(s));
    op.done = true;
    return;
  }
  ucp_request_param_t params{};
  params.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  params.cb.send = &Lane::OnGetDone;
  params.user_data = &op;
  ucs_status_ptr_t r = ucp_get_nbx(op.peer->ep, op.dst, op.length, op.remote_address, op.rkey, &params);
  if (r == nullptr) {
    op.done = true;  // completed in place; no callback follows
  } else if (UCS_PTR_IS_ERR(r)) {
    op.done = true;
    op.ucs = UCS_PTR_STATUS(r);
  } else {
    op.request = r;
  }
}

bool UcxTransport::Lane::WaitAll(const std::vector<GetOp*>& ops, Deadline deadline, const UcxOptions& o) {
  Clock::time_point spin_until = Clock::now() + o.spin;
  while (true) {
    {
      MutexLock lock(mu);
      const unsigned progressed = ProgressLocked();
      if (AllDone(ops)) return true;
      if (deadline.Expired()) return false;
      if (progressed > 0 || Clock::now() < spin_until) continue;
      // BUSY: events are queued (or a shared-memory copy is still pending),
      // so keep progressing instead of sleeping.
      if (ucp_worker_arm(worker) == UCS_ERR_BUSY) continue;
      ++sleepers;
    }
    auto wait = std::min<Clock::duration>(deadline.Remaining(), o.max_sleep);
    struct pollfd pfd{efd, POLLIN, 0};
    poll(&pfd, 1, static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
    {
      MutexLock lock(mu);
      --sleepers;
    }
    spin_until = Clock::now() + o.spin;
  }
}

bool UcxTransport::Lane::AbandonLocked(const std::vector<GetOp*>& ops, std::chrono::milliseconds close_timeout) {
  for (GetOp* op : ops) {
    if (op->done) continue;
    op->abandoned = true;
    // UCP cannot cancel a get; closing its ep with FORCE completes every
    // request on that ep with UCS_ERR_CANCELED, after which nothing of it
    // touches `dst`. Other Pulls' gets to the same producer on this lane are
    // cancelled too (reported Aborted); the next Pull reconnects.
    DropLocked(op->peer);
  }
  const Deadline limit = Deadline::After(close_timeout);
  while (!AllDone(ops)) {
    if (limit.Expired()) return false;
    ProgressLocked();
  }
  return true;
}

Status UcxTransport::Lane::FinishLocked(const std::vector<GetOp*>& ops) {
  Status worst;
  for (GetOp* op : ops) {
    if (op->leaked) {
      KeepWorst(worst, Status::DeadlineExceeded("ucx transport: item " + std::to_string(op->item) +
                                                ": the deadline passed and UCX did not complete the cancelled get; "
                                                "its destination may still be written"));
      continue;
    }
    if (op->request != nullptr) ucp_request_free(op->request);
    op->request = nullptr;
    // After the op completed; for an abandoned op its ep is already closed,
    // which UCX tolerates (the rkey does not refer to the ep once unpacked).
    if (op->rkey != nullptr) ucp_rkey_destroy(op->rkey);
    op->rkey = nullptr;

    const std::string what = "ucx transport: get of item " + std::to_string(op->item) + " (" +
                             std::to_string(op->length) + " bytes)";
    if (!op->error.ok()) {
      KeepWorst(worst, op->error);
    } else if (op->ucs == UCS_OK) {
      // done
    } else if (op->peer != nullptr && op->peer->failed) {
      KeepWorst(worst, Status::Unavailable(what + ": the producer is unreachable: " + Ucs(op->peer->failure)));
    } else if (IsPeerGone(op->ucs)) {
      KeepWorst(worst, Status::Unavailable(what + ": the producer is unreachable: " + Ucs(op->ucs)));
    } else if (op->abandoned) {
      KeepWorst(worst, Status::DeadlineExceeded(what + ": not completed by the deadline"));
    } else if (op->ucs == UCS_ERR_CANCELED) {
      KeepWorst(worst, Status::Aborted(what + ": cancelled (another Pull force-closed the endpoint)"));
    } else {
      KeepWorst(worst, Status::Aborted(what + ": " + Ucs(op->ucs)));
    }
    // A failed endpoint leaves the cache so the next Pull reconnects.
    if (op->peer != nullptr && op->peer->failed) DropLocked(op->peer);
    op->peer.reset();
  }
  return worst;
}

namespace {

// Copies op's bytes from the producer with process_vm_readv, in chunks so
// the deadline is checked as it goes. Sets `denied` (and returns OK) if the
// kernel does not let this process read the producer: the caller then uses
// UCP instead. Nothing is in flight when it returns.
template <typename Op>
Status CmaRead(Op& op, Deadline deadline, bool& denied) {
  const std::string what = "ucx transport: cma read of item " + std::to_string(op.item) + " (" +
                           std::to_string(op.length) + " bytes) from pid " + std::to_string(op.cma->pid);
  denied = false;
  char* dst = static_cast<char*>(op.dst);
  uint64_t done = 0;
  while (done < op.length) {
    if (deadline.Expired()) return Status::DeadlineExceeded(what + ": not completed by the deadline");
    const uint64_t n = std::min(kCmaChunk, op.length - done);
    struct iovec local{dst + done, n};
    struct iovec remote{reinterpret_cast<void*>(op.remote_address + done), n};
    const ssize_t got = process_vm_readv(op.cma->pid, &local, 1, &remote, 1, 0);
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
  if (Exited(op.cma->pidfd)) return Status::Unavailable(what + ": the producer process exited");
  return Status::Ok();
}

}  // namespace

Status UcxTransport::Lane::Run(const std::vector<GetOp*>& ops, Deadline deadline, const UcxOptions& o) {
  std::vector<GetOp*> cma_ops, ucx_ops;
  for (GetOp* op : ops) (op->cma != nullptr ? cma_ops : ucx_ops).push_back(op);
  // While UCX gets are in flight here, this thread progresses the worker
  // (and lane 0's service thread keeps off it); CMA copies need neither.
  bool counted = false;
  auto post = [&](GetOp* op) {  // under mu
    if (!counted) ++active_pulls;
    counted = true;
    PostLocked(*op);
  };
  {
    MutexLock lock(mu);
    for (GetOp* op : ucx_ops) post(op);
  }
  // CMA copies run on this thread, outside the lock: they touch no UCX state.
  for (GetOp* op : cma_ops) {
    bool denied = false;
    Status s = CmaRead(*op, deadline, denied);
    MutexLock lock(mu);
    if (denied) {
      FERRY_LOG(INFO) << "ucx transport: pid " << op->cma->pid << " may not be read with CMA; using UCP get";
      op->cma->denied = true;
      op->cma.reset();
      post(op);
      ucx_ops.push_back(op);
      continue;
    }
    op->error = std::move(s);
    op->done = true;
  }
  const bool completed = ucx_ops.empty() || WaitAll(ucx_ops, deadline, o);
  MutexLock lock(mu);
  if (!completed && !AbandonLocked(ucx_ops, o.close_timeout)) {
    FERRY_LOG(ERROR) << "ucx transport: lane " << index << ": UCX did not complete force-closed gets within "
                     << o.close_timeout.count() << " ms; leaking their state";
    for (GetOp* op : ucx_ops) op->leaked = !op->done;
  }
  Status s = FinishLocked(ops);
  if (counted && --active_pulls == 0) idle_cv.notify_all();
  return s;
}

void UcxTransport::Lane::Shutdown(std::chrono::milliseconds close_timeout) {
  if (worker == nullptr) return;
  {
    MutexLock lock(mu);
    while (!peers.empty()) DropLocked(peers.begin()->second);
    const Deadline limit = Deadline::After(close_timeout);
    while (!closing.empty() && !limit.Expired()) ProgressLocked();
    if (!closing.empty()) {
      FERRY_LOG(WARNING) << "ucx transport: lane " << index << ": " << closing.size()
                         << " endpoint closes still pending at shutdown";
    }
    // Requests are released with the worker.
    closing.clear();
  }
  ucp_worker_destroy(worker);
  worker = nullptr;
}

StatusOr<std::unique_ptr<UcxTransport>> UcxTransport::Create(const UcxOptions& options) {
  if (kUnderTsan && std::getenv("UCX_MEM_EVENTS") == nullptr) {
    // UCX's hook on madvise runs when any thread exits and crashes inside
    // ThreadSanitizer's runtime; UCX reads this switch when it is loaded.
    FERRY_LOG(WARNING) << "ucx transport: under ThreadSanitizer set UCX_MEM_EVENTS=no in the environment";
  }
  ucp_config_t* config = nullptr;
  ucs_status_t s = ucp_config_read(nullptr, nullptr, &config);
  if (s != UCS_OK) return Status::Internal("ucx transport: reading the UCX configuration: " + Ucs(s));
  if (!options.default_tls.empty() && std::getenv("UCX_TLS") == nullptr) {
    s = ucp_config_modify(config, "TLS", options.default_tls.c_str());
    if (s != UCS_OK) {
      ucp_config_release(config);
      return Status::InvalidArgument("ucx transport: UCX_TLS='" + options.default_tls + "': " + Ucs(s));
    }
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED | UCP_PARAM_FIELD_NAME;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
  // Lanes are progressed by different threads at once.
  params.mt_workers_shared = 1;
  params.name = "ferry";
  ucp_context_h context = nullptr;
  s = ucp_init(&params, config, &context);
  ucp_config_release(config);
  if (s != UCS_OK) return Status::Unavailable("ucx transport: ucp_init: " + Ucs(s));
  std::unique_ptr<UcxTransport> transport(new UcxTransport(options, context));
  FERRY_RETURN_IF_ERROR(transport->Init());
  return transport;
}

UcxTransport::UcxTransport(const UcxOptions& options, ucp_context* context)
    : options_(options), context_(context), pool_("ferry-ucx-lane") {}

Status UcxTransport::Init() {
  const int lanes = std::clamp(options_.pull_lanes, 1, kMaxLanes);
  for (int i = 0; i < lanes; ++i) {
    auto lane = std::make_unique<Lane>();
    lane->index = i;
    ucp_worker_params_t params{};
    params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    // Our lane mutex serializes every call on a worker.
    params.thread_mode = UCS_THREAD_MODE_SERIALIZED;
    ucs_status_t s = ucp_worker_create(context_, &params, &lane->worker);
    if (s != UCS_OK) return Status::Unavailable("ucx transport: ucp_worker_create: " + Ucs(s));
    lanes_.push_back(std::move(lane));
    s = ucp_worker_get_efd(lanes_.back()->worker, &lanes_.back()->efd);
    if (s != UCS_OK) return Status::Unavailable("ucx transport: ucp_worker_get_efd: " + Ucs(s));
  }
  ucp_address_t* address = nullptr;
  size_t address_len = 0;
  ucs_status_t s = ucp_worker_get_address(lanes_[0]->worker, &address, &address_len);
  if (s != UCS_OK) return Status::Unavailable("ucx transport: ucp_worker_get_address: " + Ucs(s));
  // Producers publish their identity even when this process reads with UCP
  // only: the choice is the consumer's.
  host_key_ = HostKey();
  const uint64_t pid = static_cast<uint64_t>(getpid());
  const uint64_t start_time = ProcessStartTime(pid);
  if (start_time == 0) host_key_.clear();  // cannot be named safely: no CMA to or from it
  endpoint_ = EncodeEndpoint(pid, start_time, host_key_, address, address_len);
  ucp_worker_release_address(lanes_[0]->worker, address);
  service_thread_ = std::thread([this] { ServeLoop(); });
  return Status::Ok();
}

UcxTransport::~UcxTransport() {
  if (service_thread_.joinable()) {
    Lane& lane = *lanes_[0];
    {
      MutexLock lock(lane.mu);
      stopping_ = true;
      lane.idle_cv.notify_all();
    }
    ucp_worker_signal(lane.worker);
    service_thread_.join();
  }
  for (auto& lane : lanes_) lane->Shutdown(options_.close_timeout);
  {
    MutexLock lock(regions_mu_);
    for (auto& [key, region] : regions_) ucp_mem_unmap(context_, region.memh);
    regions_.clear();
  }
  ucp_cleanup(context_);
}

const std::string& UcxTransport::name() const {
  static const std::string kName = "nixl";
  return kName;
}

StatusOr<std::shared_ptr<UcxTransport::CmaPeer>> UcxTransport::CmaPeerFor(std::string_view endpoint, uint64_t pid,
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
  if (ProcessStartTime(pid) != start_time) return Status::Unavailable(what + " is gone (the pid was reused)");
  cma_peers_.emplace(peer->endpoint, peer);
  return peer;
}

void UcxTransport::DropCmaPeer(const std::shared_ptr<CmaPeer>& peer) {
  MutexLock lock(cma_mu_);
  auto it = cma_peers_.find(peer->endpoint);
  if (it != cma_peers_.end() && it->second == peer) cma_peers_.erase(it);
}

void UcxTransport::ServeLoop() {
  Lane& lane = *lanes_[0];
  while (!stopping_) {
    {
      MutexLock lock(lane.mu);
      if (lane.active_pulls > 0) {
        // Pull threads progress this worker now; stay out of their way.
        lane.idle_cv.wait(lock.native(), [&] { return lane.active_pulls == 0 || stopping_; });
        continue;
      }
      while (lane.ProgressLocked() > 0) {
      }
      if (ucp_worker_arm(lane.worker) == UCS_ERR_BUSY) continue;
    }
    struct pollfd pfd{lane.efd, POLLIN, 0};
    poll(&pfd, 1, kServeSleepMs);
  }
}

StatusOr<ExportedBuffers> UcxTransport::Export(const std::vector<BufferView>& buffers) {
  ExportedBuffers out;
  out.endpoint = endpoint_;
  out.descriptors.reserve(buffers.size());
  MutexLock lock(regions_mu_);
  std::vector<std::pair<uintptr_t, uint64_t>> taken;  // undone if a later buffer fails
  auto undo = [&] {
    for (const auto& key : taken) {
      auto it = regions_.find(key);
      if (--it->second.refs == 0) {
        ucp_mem_unmap(context_, it->second.memh);
        regions_.erase(it);
      }
    }
  };
  for (size_t i = 0; i < buffers.size(); ++i) {
    const BufferView& b = buffers[i];
    if (b.nbytes == 0) {
      out.descriptors.push_back(EncodeDescriptor(0, 0, nullptr, 0));
      continue;
    }
    if (b.data == nullptr) {
      undo();
      return Status::InvalidArgument("ucx transport: buffer " + std::to_string(i) + " has " +
                                     std::to_string(b.nbytes) + " bytes and no address");
    }
    const auto key = std::make_pair(reinterpret_cast<uintptr_t>(b.data), b.nbytes);
    auto it = regions_.find(key);
    if (it == regions_.end()) {
      ucp_mem_map_params_t params{};
      params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
      params.address = b.data;
      params.length = b.nbytes;
      Region region;
      ucs_status_t s = ucp_mem_map(context_, &params, &region.memh);
      void* rkey = nullptr;
      size_t rkey_len = 0;
      if (s == UCS_OK) {
        s = ucp_rkey_pack(context_, region.memh, &rkey, &rkey_len);
        if (s != UCS_OK) ucp_mem_unmap(context_, region.memh);
      }
      if (s != UCS_OK) {
        undo();
        const std::string what = "ucx transport: registering buffer " + std::to_string(i) + " (" +
                                 std::to_string(b.nbytes) + " bytes): " + Ucs(s);
        if (s == UCS_ERR_NO_MEMORY || s == UCS_ERR_NO_RESOURCE) return Status::ResourceExhausted(what);
        if (s == UCS_ERR_INVALID_PARAM || s == UCS_ERR_INVALID_ADDR) return Status::InvalidArgument(what);
        return Status::Aborted(what);
      }
      region.descriptor = EncodeDescriptor(key.first, key.second, rkey, rkey_len);
      ucp_rkey_buffer_release(rkey);
      it = regions_.emplace(key, std::move(region)).first;
    }
    ++it->second.refs;
    taken.push_back(key);
    out.descriptors.push_back(it->second.descriptor);
  }
  // Over an emulated get (tcp) it is lane 0's serving thread that reads the
  // buffers. The real ordering runs through the consumer (it asks only after
  // it got the descriptors), which the C++ memory model and TSan cannot see;
  // taking the lock that thread holds while serving makes the buffers'
  // contents visible to it.
  MutexLock publish(lanes_[0]->mu);
  return out;
}

void UcxTransport::Release(const std::vector<BufferView>& buffers) {
  MutexLock lock(regions_mu_);
  // The other half of the edge in Export: whatever lane 0's thread served
  // from these buffers happens before the caller reuses or frees them.
  { MutexLock unpublish(lanes_[0]->mu); }
  for (const BufferView& b : buffers) {
    if (b.nbytes == 0) continue;
    auto it = regions_.find({reinterpret_cast<uintptr_t>(b.data), b.nbytes});
    if (it == regions_.end()) continue;
    if (--it->second.refs == 0) {
      ucp_mem_unmap(context_, it->second.memh);
      regions_.erase(it);
    }
  }
}

Status UcxTransport::Pull(std::span<const PullItem> items, Deadline deadline) {
  // Everything is checked before anything is posted.
  std::vector<std::unique_ptr<GetOp>> whole;
  uint64_t total = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const PullItem& item = items[i];
    auto descriptor = ParseDescriptor(item.descriptor);
    if (!descriptor.ok()) return descriptor.status().WithContext("item " + std::to_string(i));
    if (item.dst.nbytes != descriptor->length) {
      return Status::InvalidArgument("ucx transport: item " + std::to_string(i) + ": destination has " +
                                     std::to_string(item.dst.nbytes) + " bytes, the exported buffer " +
                                     std::to_string(descriptor->length));
    }
    if (descriptor->length == 0) continue;
    if (item.dst.data == nullptr) {
      return Status::InvalidArgument("ucx transport: item " + std::to_string(i) + ": destination has no address");
    }
    auto endpoint = ParseEndpoint(item.endpoint);
    if (!endpoint.ok()) return endpoint.status().WithContext("item " + std::to_string(i));
    auto op = std::make_unique<GetOp>();
    op->item = i;
    op->endpoint = item.endpoint;
    op->address = endpoint->address;
    op->rkey_bytes = descriptor->rkey;
    op->remote_address = descriptor->address;
    op->dst = item.dst.data;
    op->length = descriptor->length;
    if (options_.same_host_cma && !host_key_.empty() && endpoint->host_key == host_key_) {
      auto peer = CmaPeerFor(item.endpoint, endpoint->pid, endpoint->start_time);
      if (!peer.ok()) return peer.status().WithContext("item " + std::to_string(i));
      if (!(*peer)->denied) op->cma = *std::move(peer);
    }
    total += op->length;
    whole.push_back(std::move(op));
  }
  if (whole.empty()) return Status::Ok();
  if (deadline.Expired()) return Status::DeadlineExceeded("ucx transport: the deadline passed before the pull");

  // Assign ops to lanes. A small pull stays on one lane (round robin, so
  // concurrent small pulls spread); a large one is striped over all.
  const size_t nlanes = lanes_.size();
  std::vector<std::unique_ptr<GetOp>> ops;
  std::vector<std::vector<GetOp*>> per_lane(nlanes);
  if (nlanes == 1 || total < options_.stripe_min_bytes) {
    const size_t lane = next_lane_.fetch_add(1, std::memory_order_relaxed) % nlanes;
    for (auto& op : whole) per_lane[lane].push_back(op.get());
    ops = std::move(whole);
  } else {
    std::vector<uint64_t> load(nlanes, 0);
    for (auto& op : whole) {
      if (op->length >= options_.stripe_min_bytes) {
        uint64_t piece = (op->length + nlanes - 1) / nlanes;
        piece = (piece + kStripeAlign - 1) / kStripeAlign * kStripeAlign;
        for (uint64_t offset = 0, lane = 0; offset < op->length; offset += piece, ++lane) {
          auto stripe = std::make_unique<GetOp>(*op);
          stripe->remote_address += offset;
          stripe->dst = static_cast<char*>(op->dst) + offset;
          stripe->length = std::min(piece, op->length - offset);
          load[lane] += stripe->length;
          per_lane[lane].push_back(stripe.get());
          ops.push_back(std::move(stripe));
        }
      } else {
        const size_t lane = std::min_element(load.begin(), load.end()) - load.begin();
        load[lane] += op->length;
        per_lane[lane].push_back(op.get());
        ops.push_back(std::move(op));
      }
    }
  }

  // This thread drives the first busy lane; pool threads drive the others.
  struct Join {
    Mutex mu;
    std::condition_variable cv;
    int pending FERRY_GUARDED_BY(mu) = 0;
    Status worst FERRY_GUARDED_BY(mu);
  } join;
  int inline_lane = -1;
  for (size_t lane = 0; lane < nlanes; ++lane) {
    if (per_lane[lane].empty()) continue;
    if (inline_lane < 0) {
      inline_lane = static_cast<int>(lane);
      continue;
    }
    {
      MutexLock lock(join.mu);
      ++join.pending;
    }
    pool_.Submit([this, &join, &per_lane, lane, deadline] {
      Status s = lanes_[lane]->Run(per_lane[lane], deadline, options_);
      MutexLock lock(join.mu);
      KeepWorst(join.worst, std::move(s));
      if (--join.pending == 0) join.cv.notify_all();
    });
  }
  Status worst = lanes_[inline_lane]->Run(per_lane[inline_lane], deadline, options_);
  {
    // Each lane's Run ends by the deadline plus close_timeout.
    MutexLock lock(join.mu);
    join.cv.wait(lock.native(), [&] { return join.pending == 0; });
    KeepWorst(worst, join.worst);
  }
  for (auto& op : ops) {
    // A producer found gone is forgotten: the next Pull fails at once.
    if (op->cma != nullptr && op->error.code() == StatusCode::kUnavailable) DropCmaPeer(op->cma);
    if (op->leaked) op.release();  // UCX may still complete it; see Lane::Run
  }
  return worst;
}

UcxTransport::Stats UcxTransport::stats() {
  Stats stats;
  stats.lanes = static_cast<int>(lanes_.size());
  {
    MutexLock lock(regions_mu_);
    stats.registered_regions = regions_.size();
  }
  {
    MutexLock lock(cma_mu_);
    stats.cma_peers = cma_peers_.size();
  }
  for (auto& lane : lanes_) {
    MutexLock lock(lane->mu);
    stats.cached_endpoints += lane->peers.size();
  }
  return stats;
}

StatusOr<std::unique_ptr<OneSidedTransport>> CreateUcxTransport() {
  FERRY_ASSIGN_OR_RETURN(auto transport, UcxTransport::Create(UcxOptions::FromEnv()));
  return std::unique_ptr<OneSidedTransport>(std::move(transport));
}

}  // namespace ferry::transport
