// Names of tensor transports and what kind each is.
#pragma once

#include <string>
#include <vector>

#include "ferry/status.h"

namespace ferry::core {

// True for transports where both ends act (a group is needed).
bool IsTwoSidedTransport(const std::string& transport);
// True for transports where the receiver pulls what the producer exported
// ("nixl", "shm", "cuda_ipc", and "auto", which picks shm or nixl).
bool IsOneSidedTransport(const std::string& transport);
// True when `transport` is "" / "object_store".
bool IsObjectStoreTransport(const std::string& transport);
// Tensor transports this build can move tensors with.
std::vector<std::string> AvailableTensorTransports();
// Unimplemented, naming the available ones, for a transport this build lacks.
Status CheckTensorTransport(const std::string& transport);
// True when groups of collective `backend` move objects of `transport`.
bool BackendServes(const std::string& backend, const std::string& transport);

}  // namespace ferry::core
