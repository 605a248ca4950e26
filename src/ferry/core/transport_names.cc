#include "ferry/core/transport_names.h"

#include "ferry/transport/registry.h"

namespace ferry::core {

bool BackendServes(const std::string& backend, const std::string& transport) {
  if (transport == "gloo") return backend == "gloo" || backend == "torch_gloo";
  return backend == transport;
}

bool IsTwoSidedTransport(const std::string& transport) {
  return transport == "gloo" || transport == "nccl";
}

bool IsOneSidedTransport(const std::string& transport) {
  return transport == "nixl" || transport == "shm" || transport == "cuda_ipc" || transport == "auto";
}

bool IsObjectStoreTransport(const std::string& transport) {
  return transport.empty() || transport == "object_store";
}

std::vector<std::string> AvailableTensorTransports() {
  std::vector<std::string> names = {"object_store", "gloo"};
  bool shm = false;
  for (const std::string& t : transport::AvailableOneSidedTransports()) {
    names.push_back(t);
    shm = shm || t == "shm";
  }
  if (shm) names.push_back("auto");
  return names;
}

Status CheckTensorTransport(const std::string& transport) {
  if (IsObjectStoreTransport(transport)) return Status::Ok();
  std::string names;
  for (const auto& t : AvailableTensorTransports()) {
    if (t == transport) return Status::Ok();
    names += (names.empty() ? "" : ", ") + t;
  }
  return Status::Unimplemented("tensor_transport '" + transport +
                               "' is not available in this build of ferry (available: " + names + ")");
}

}  // namespace ferry::core
