// The shm backend's only public entry point (see README.md): a same-host,
// one-copy OneSidedTransport named "shm". Only the registry includes this
// file.
//
// THREAD CONTRACT: both functions may be called from any thread.
//
//   std::unique_ptr<OneSidedTransport> shm = CreateShmTransport();
//   if (IsLocalShmEndpoint(rdt.endpoint())) { /* pull with shm */ }
#pragma once

#include <memory>
#include <string_view>

#include "ferry/transport/one_sided_transport.h"

namespace ferry::transport {

std::unique_ptr<OneSidedTransport> CreateShmTransport();

// True if a "shm" endpoint names a process on this host (same boot id), so
// its buffers can be pulled with shm.
bool IsLocalShmEndpoint(std::string_view endpoint);

}  // namespace ferry::transport
