// TwoSidedTransport: one rank's communicator in a collective group whose
// transfers need both ends to act (Gloo, NCCL): the sender posts Send, the
// receiver posts the matching Recv, and bytes move directly between the two
// processes. See docs/architecture.md, "Direct tensor transport".
//
// Lifecycle: created connected by a factory (registry.h), used, then either
// destroyed or Abort()ed. A system error inside the transport (a peer's
// connection lost, a transfer timing out) aborts it, as docs/architecture.md requires: the
// group is destroyed and every pending and later transfer fails with the
// reason. Destroying the transport aborts it with Cancelled and waits for every
// callback to have returned, so it must not be destroyed from one of its own
// callbacks.
//
// THREAD CONTRACT: thread-safe. Send and Recv post and return at once; they
// never wait on the peer. `done` fires exactly once, on a transport-owned
// thread, never under a transport lock: with OK, the transfer's error,
// DeadlineExceeded after the transfer timeout, or the abort reason. A transfer
// that waits never holds up another one.
//
//   std::vector<BufferView> bufs = {{header.data(), header.size()}, {data, n}};
//   std::promise<Status> sent;
//   transport->Send(/*peer=*/1, /*tag=*/MakeTag(owner, seq), bufs,
//                   [&](Status s) { sent.set_value(s); });
//   FERRY_RETURN_IF_ERROR(sent.get_future().get());  // buffers free to reuse
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "ferry/status.h"

namespace ferry::transport {

// Borrowed memory: the caller keeps it alive and untouched until the
// transfer's callback has fired. `data` may be null when `nbytes` is 0.
struct BufferView {
  void* data = nullptr;
  uint64_t nbytes = 0;
};

using TransferCallback = std::function<void(Status)>;

class TwoSidedTransport {
 public:
  virtual ~TwoSidedTransport() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Sends `buffers`, in order, to `peer` under `tag`. Tags are unique per
  // transfer between a pair (the caller guarantees it); the matching Recv must
  // list the same number of buffers with the same sizes, else both sides fail.
  // Zero-byte buffers are allowed.
  virtual void Send(int peer, uint64_t tag, std::vector<BufferView> buffers,
                    TransferCallback done) = 0;

  // Receives into `buffers`, in order, what `peer` sends under `tag`.
  virtual void Recv(int peer, uint64_t tag, std::vector<BufferView> buffers,
                    TransferCallback done) = 0;

  // Fails every pending transfer and every later call with `reason` (must not
  // be OK). Idempotent: the first reason wins. Does not wait for callbacks.
  virtual void Abort(Status reason) = 0;
};

}  // namespace ferry::transport
