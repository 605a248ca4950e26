// The Gloo backend's only public entry point: builds a TwoSidedTransport over
// Gloo's TCP transport (see README.md). Only the registry includes this file.
//
// Lifecycle: CreateGlooTransport blocks until every rank of the group has
// called it with the same prefix and store and the full mesh is connected, or
// until `timeout`; the returned transport is then ready.
//
// THREAD CONTRACT: CreateGlooTransport may be called from any thread; ranks of
// one group in one process must call it from different threads at once.
//
//   InMemoryRendezvousStore store;
//   GlooOptions options{.prefix = "group-7", .rank = 0, .size = 2};
//   FERRY_ASSIGN_OR_RETURN(auto transport, CreateGlooTransport(store, options));
//   transport->Send(1, /*tag=*/1, {{data, n}}, [](Status s) { /* ... */ });
//   transport.reset();  // closes the connections
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "ferry/common/config.h"
#include "ferry/transport/rendezvous_store.h"
#include "ferry/transport/two_sided_transport.h"

namespace ferry::transport {

struct GlooOptions {
  // Every key this group writes to the store starts with "<prefix>/"; one
  // prefix per group instance.
  std::string prefix;
  int rank = 0;
  int size = 1;
  // The address this rank listens on; loopback unless the group spans hosts.
  std::string hostname = "127.0.0.1";
  // Bound on the rendezvous and on connecting the full mesh.
  // Default FERRY_TRANSFER_TIMEOUT_S.
  std::chrono::milliseconds timeout = Config::Get().transfer_timeout;
  // Bound on one transfer, from Send/Recv to completion; past it the transfer
  // fails with DeadlineExceeded and the transport aborts.
  // Default FERRY_TRANSFER_TIMEOUT_S.
  std::chrono::milliseconds transfer_timeout = Config::Get().transfer_timeout;
};

StatusOr<std::unique_ptr<TwoSidedTransport>> CreateGlooTransport(RendezvousStore& store,
                                                                 const GlooOptions& options);

}  // namespace ferry::transport
