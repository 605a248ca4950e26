// GlooTransport: a TwoSidedTransport over one gloo::rendezvous::Context
// (full mesh of TCP pairs). Create it through CreateGlooTransport (factory.h).
//
// Each Send or Recv is one operation run by its own waiter thread (a
// WaiterPool that grows to the peak number of concurrent transfers), so a
// transfer waiting on its peer never delays another. An operation moves, under
// Gloo slot = tag, first a 32-byte header (buffer count, total bytes, a hash of
// the sizes) and then every non-empty buffer as an UnboundBuffer. The receiver
// posts its data buffers only after the header matched its own, because Gloo
// treats a larger-than-posted message as a fatal error on its I/O thread;
// zero-byte buffers are described by the header and never sent.
//
// Lifecycle: connected on creation. Abort (called, or caused by a Gloo
// exception, a timeout or a header mismatch) fails every pending and later
// operation with the first reason, and releases the Gloo context once the last
// operation has let go of it, which closes the connections so peers fail
// promptly too. The destructor aborts with Cancelled, waits for every callback,
// and must not run on one of this transport's callbacks.
//
// THREAD CONTRACT: thread-safe. Callbacks fire on waiter threads, never under a
// lock; Gloo exceptions never escape.
//
//   GlooOptions options{.prefix = "g", .rank = 1, .size = 2};
//   FERRY_ASSIGN_OR_RETURN(auto t, GlooTransport::Create(store, options));
//   std::promise<Status> got;
//   t->Recv(/*peer=*/0, /*tag=*/9, {{dst, n}}, [&](Status s) { got.set_value(s); });
//   FERRY_RETURN_IF_ERROR(got.get_future().get());
#pragma once

#include <condition_variable>
#include <memory>
#include <optional>
#include <set>

#include "ferry/common/clock.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/transport/gloo/factory.h"
#include "ferry/transport/two_sided_transport.h"
#include "ferry/transport/waiter_pool.h"

namespace gloo {
class Context;
}  // namespace gloo

namespace ferry::transport {

class GlooTransport final : public TwoSidedTransport {
 public:
  static StatusOr<std::unique_ptr<GlooTransport>> Create(RendezvousStore& store,
                                                         const GlooOptions& options);
  ~GlooTransport() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void Send(int peer, uint64_t tag, std::vector<BufferView> buffers,
            TransferCallback done) override;
  void Recv(int peer, uint64_t tag, std::vector<BufferView> buffers,
            TransferCallback done) override;
  void Abort(Status reason) override;

 private:
  struct Op;

  GlooTransport(std::shared_ptr<gloo::Context> context, const GlooOptions& options);

  void Post(std::shared_ptr<Op> op);
  // On a waiter thread: runs `op` to completion, then fires its callback.
  void RunOp(Op& op);
  // Posts and waits; converts every Gloo exception into a Status.
  Status Execute(Op& op, std::shared_ptr<gloo::Context>& context);
  // Waits for buffer `index` of `op` to finish sending or receiving.
  Status WaitBuffer(Op& op, size_t index);
  // Records the first failure, interrupts every waiting operation and drops
  // the transport's reference to the Gloo context.
  void AbortWith(Status reason);

  // Const after construction.
  const int rank_;
  const int size_;
  const std::chrono::milliseconds transfer_timeout_;

  Mutex mu_;
  std::shared_ptr<gloo::Context> context_ FERRY_GUARDED_BY(mu_);  // null once aborted
  std::optional<Status> aborted_ FERRY_GUARDED_BY(mu_);
  std::set<Op*> in_flight_ FERRY_GUARDED_BY(mu_);

  // Last member: destroyed first, so every operation has finished before the
  // members above go away.
  WaiterPool pool_;
};

}  // namespace ferry::transport
