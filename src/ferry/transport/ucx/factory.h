// The UCX backend's only public entry point (see README.md): a
// OneSidedTransport named "nixl" built on UCP one-sided get. Only the
// registry includes this file.
//
// Lifecycle: CreateUcxTransport makes the UCP context and worker of this
// process; destroying the transport closes its endpoints and releases every
// registration.
//
// THREAD CONTRACT: may be called from any thread.
//
//   FERRY_ASSIGN_OR_RETURN(std::unique_ptr<OneSidedTransport> ucx, CreateUcxTransport());
#pragma once

#include <memory>

#include "ferry/status.h"
#include "ferry/transport/one_sided_transport.h"

namespace ferry::transport {

StatusOr<std::unique_ptr<OneSidedTransport>> CreateUcxTransport();

// Sets this process's UCX defaults that UCX reads only from the environment
// (larger tcp segments: an emulated get between hosts then runs at line
// rate instead of ~0.5x); variables the user set are kept. Call at process
// start, before other threads read the environment.
void SetUcxEnvironmentDefaults();

}  // namespace ferry::transport
