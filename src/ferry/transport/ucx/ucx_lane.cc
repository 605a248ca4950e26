#include "ferry/transport/ucx/ucx_lane.h"

#include <poll.h>

#include <algorithm>

#include "ferry/common/logging.h"
#include "ferry/transport/ucx/ucx_cma.h"

namespace ferry::transport {
namespace {

using ucx::KeepWorst;
using ucx::Ucs;

// Statuses with which UCX reports that the other process cannot be reached
// any more (it exited, was killed, or its connection broke).
bool IsPeerGone(ucs_status_t s) {
  switch (s) {
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_REJECTED:
    case UCS_ERR_SHMEM_SEGMENT: return true;
    default: return false;
  }
}

// How much a failure tells the caller; Pull reports the most telling one.
int Severity(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return 0;
    case StatusCode::kInvalidArgument: return 4;  // the caller's mistake: fix it, don't retry
    case StatusCode::kUnavailable: return 3;      // the producer is gone
    case StatusCode::kDeadlineExceeded: return 2;
    default: return 1;
  }
}

}  // namespace

namespace ucx {

void KeepWorst(Status& worst, Status s) {
  if (Severity(s) > Severity(worst)) worst = std::move(s);
}

std::string Ucs(ucs_status_t s) { return ucs_status_string(s); }

}  // namespace ucx

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
  op->lane->mu.AssertHeld();
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
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
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
  ucs_status_ptr_t r = ucp_get_nbx(op.peer->ep, op.dst, op.length, op.remote_address, op.rkey,
                                   &params);
  if (r == nullptr) {
    op.done = true;  // completed in place; no callback follows
  } else if (UCS_PTR_IS_ERR(r)) {
    op.done = true;
    op.ucs = UCS_PTR_STATUS(r);
  } else {
    op.request = r;
  }
}

bool UcxTransport::Lane::WaitAll(const std::vector<GetOp*>& ops, Deadline deadline,
                                 const UcxOptions& o) {
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
    struct pollfd pfd {
      efd, POLLIN, 0
    };
    poll(&pfd, 1, static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
    {
      MutexLock lock(mu);
      --sleepers;
    }
    spin_until = Clock::now() + o.spin;
  }
}

bool UcxTransport::Lane::AbandonLocked(const std::vector<GetOp*>& ops,
                                       std::chrono::milliseconds close_timeout) {
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
      KeepWorst(worst, Status::DeadlineExceeded(
                           "ucx transport: item " + std::to_string(op->item) +
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
      KeepWorst(worst, Status::Unavailable(
                           what + ": the producer is unreachable: " + Ucs(op->peer->failure)));
    } else if (IsPeerGone(op->ucs)) {
      KeepWorst(worst,
                Status::Unavailable(what + ": the producer is unreachable: " + Ucs(op->ucs)));
    } else if (op->abandoned) {
      KeepWorst(worst, Status::DeadlineExceeded(what + ": not completed by the deadline"));
    } else if (op->ucs == UCS_ERR_CANCELED) {
      KeepWorst(worst,
                Status::Aborted(what + ": cancelled (another Pull force-closed the endpoint)"));
    } else {
      KeepWorst(worst, Status::Aborted(what + ": " + Ucs(op->ucs)));
    }
    // A failed endpoint leaves the cache so the next Pull reconnects.
    if (op->peer != nullptr && op->peer->failed) DropLocked(op->peer);
    op->peer.reset();
  }
  return worst;
}

Status UcxTransport::Lane::Run(const std::vector<GetOp*>& ops, Deadline deadline,
                               const UcxOptions& o) {
  std::vector<GetOp*> cma_ops, ucx_ops;
  for (GetOp* op : ops) (op->cma != nullptr ? cma_ops : ucx_ops).push_back(op);
  // While UCX gets are in flight here, this thread progresses the worker
  // (and lane 0's service thread keeps off it); CMA copies need neither.
  bool counted = false;
  auto post = [&](GetOp* op) FERRY_REQUIRES(mu) {
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
    Status s = ucx::CmaRead({op->cma->pid, op->cma->pidfd, op->item, op->remote_address, op->dst,
                             op->length},
                            deadline, denied);
    MutexLock lock(mu);
    if (denied) {
      FERRY_LOG(INFO) << "ucx transport: pid " << op->cma->pid
                      << " may not be read with CMA; using UCP get";
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
    FERRY_LOG(ERROR) << "ucx transport: lane " << index
                     << ": UCX did not complete force-closed gets within "
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

}  // namespace ferry::transport
