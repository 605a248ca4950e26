// FakeTransportGroup: an in-process TwoSidedTransport group for unit tests of
// the transfer protocol. Each rank's transport matches its Send with the peer's
// Recv by (source, destination, tag), copies the bytes with memcpy, and fires
// both callbacks. Failure behaves like a real backend: a timeout, an injected
// failure or Abort aborts that rank, fails its pending and later transfers, and
// fails (and aborts) peers' transfers that involve it, as a lost connection
// would.
//
// Lifecycle: construct the group, hand out each rank's transport once with
// Transport(rank), and destroy the group after those transports.
//
// THREAD CONTRACT: thread-safe. One group thread does every copy, deadline
// check and callback, in posting order of completion; callbacks run there,
// without a lock, one at a time, so a callback must not block on another
// transfer of the same group.
//
//   FakeTransportGroup group(2);
//   auto t0 = group.Transport(0), t1 = group.Transport(1);
//   t0->Send(1, /*tag=*/7, {{src, n}}, [](Status s) { /* OK */ });
//   t1->Recv(0, /*tag=*/7, {{dst, n}}, [](Status s) { /* OK, dst == src */ });
//   group.FailNextTransfer(Status::Unavailable("injected"));
#pragma once

#include <chrono>
#include <memory>

#include "ferry/common/config.h"
#include "ferry/transport/two_sided_transport.h"

namespace ferry::transport {

struct FakeTransportOptions {
  // A transfer not matched and completed by then fails with DeadlineExceeded
  // and aborts its rank. Default FERRY_TRANSFER_TIMEOUT_S.
  std::chrono::milliseconds transfer_timeout = Config::Get().transfer_timeout;
};

class FakeTransportGroup {
 public:
  explicit FakeTransportGroup(int size, FakeTransportOptions options = {});
  // Aborts every rank still alive and joins the group thread.
  ~FakeTransportGroup();
  FakeTransportGroup(const FakeTransportGroup&) = delete;
  FakeTransportGroup& operator=(const FakeTransportGroup&) = delete;

  // Rank `rank`'s transport. Destroying it aborts the rank with Cancelled and
  // waits for its callbacks; it must not outlive the group.
  std::unique_ptr<TwoSidedTransport> Transport(int rank);

  // The next Send or Recv posted on any rank fails with `status` (not OK);
  // with `abort_rank` its rank is aborted with it too, as a real backend does
  // on a system error.
  void FailNextTransfer(Status status, bool abort_rank = true);

  class Hub;

 private:
  std::unique_ptr<Hub> hub_;
};

}  // namespace ferry::transport
