#include "ferry/transport/transport_table.h"

#include <algorithm>
#include <cctype>

#include "ferry/config.h"

namespace ferry::transport {
namespace {

std::vector<TransportInfo> MakeTable() {
  using enum TransportKind;
  return {
      // Pickled with the value: any tensor torch can pickle.
      {.name = "object_store", .kind = kObjectStore, .devices = {"cpu", "cuda"}, .available = true},
      {.name = "gloo",
       .kind = kTwoSided,
       .devices = {"cpu"},
       .available = FERRY_HAVE_GLOO == 1,
       .collective_backends = {"gloo", "torch_gloo"}},
      // No NCCL backend in the tree: CUDA tensors have no two-sided transport.
      {.name = "nccl",
       .kind = kTwoSided,
       .devices = {"cuda"},
       .available = false,
       .collective_backends = {"nccl"}},
      {.name = "nixl",
       .kind = kOneSided,
       .devices = {"cpu"},
       .available = FERRY_HAVE_UCX == 1,
       .one_sided_backends = {"nixl"}},
      {.name = "shm",
       .kind = kOneSided,
       .devices = {"cpu"},
       .available = FERRY_HAVE_SHM == 1,
       .same_host = true,
       .one_sided_backends = {"shm"}},
      // No CUDA IPC backend in the tree.
      {.name = "cuda_ipc",
       .kind = kOneSided,
       .devices = {"cuda"},
       .available = false,
       .same_host = true,
       .one_sided_backends = {"cuda_ipc"}},
      // shm for receivers on the producer's host, nixl for the others:
      // usable whenever shm is (a receiver elsewhere then fails to pull
      // without nixl).
      {.name = "auto",
       .kind = kOneSided,
       .devices = {"cpu"},
       .available = FERRY_HAVE_SHM == 1,
       .one_sided_backends = {"shm", "nixl"}},
  };
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool Contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

std::string_view TransportKindName(TransportKind kind) {
  switch (kind) {
    case TransportKind::kObjectStore: return "object_store";
    case TransportKind::kOneSided: return "one_sided";
    case TransportKind::kTwoSided: return "two_sided";
  }
  return "unknown";
}

const std::vector<TransportInfo>& Transports() {
  static const std::vector<TransportInfo>* const kTable = new std::vector<TransportInfo>(
      MakeTable());
  return *kTable;
}

const TransportInfo* FindTransport(std::string_view name) {
  if (name.empty()) name = "object_store";
  for (const TransportInfo& t : Transports()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

bool IsObjectStore(std::string_view name) {
  const TransportInfo* t = FindTransport(name);
  return t != nullptr && t->kind == TransportKind::kObjectStore;
}

bool IsOneSided(std::string_view name) {
  const TransportInfo* t = FindTransport(name);
  return t != nullptr && t->kind == TransportKind::kOneSided;
}

bool IsTwoSided(std::string_view name) {
  const TransportInfo* t = FindTransport(name);
  return t != nullptr && t->kind == TransportKind::kTwoSided;
}

std::vector<std::string> AvailableTensorTransports() {
  std::vector<std::string> names;
  for (const TransportInfo& t : Transports()) {
    if (t.available) names.push_back(t.name);
  }
  return names;
}

Status CheckTensorTransport(std::string_view name) {
  const TransportInfo* t = FindTransport(name);
  if (t != nullptr && t->available) return Status::Ok();
  return Status::Unimplemented("tensor_transport '" + std::string(name) +
                               "' is not available in this build of ferry (available: " +
                               Join(AvailableTensorTransports()) + ")");
}

Status CheckTensorDevice(std::string_view transport, std::string_view device) {
  const TransportInfo* t = FindTransport(transport);
  const std::string_view type = device.empty() ? "cpu" : device.substr(0, device.find(':'));
  if (t == nullptr || Contains(t->devices, type)) return Status::Ok();
  std::string served;
  for (const std::string& d : t->devices) served += (served.empty() ? "" : " and ") + Upper(d);
  // Point at the transport of the same kind that does move this device's
  // tensors, if the table has one.
  std::string hint;
  for (const TransportInfo& other : Transports()) {
    if (other.kind != t->kind || !Contains(other.devices, type)) continue;
    hint = " (" + Upper(type) + " tensors need tensor_transport='" + other.name + "'" +
           (other.available ? ")" : ", which this build lacks)");
    break;
  }
  return Status::InvalidArgument("tensor_transport='" + t->name + "' moves " + served +
                                 " tensors only" + hint + "; got a tensor on " +
                                 std::string(device) + ": move it to the " +
                                 Upper(t->devices.front()) + " first");
}

std::vector<std::string> CollectiveBackends() {
  std::vector<std::string> names;
  for (const TransportInfo& t : Transports()) {
    names.insert(names.end(), t.collective_backends.begin(), t.collective_backends.end());
  }
  return names;
}

Status CheckCollectiveBackend(std::string_view backend) {
  const std::vector<std::string> names = CollectiveBackends();
  if (Contains(names, backend)) return Status::Ok();
  return Status::InvalidArgument("unknown collective backend '" + std::string(backend) +
                                 "'; valid: " + Join(names));
}

bool BackendServes(std::string_view backend, std::string_view transport) {
  const TransportInfo* t = FindTransport(transport);
  return t != nullptr && Contains(t->collective_backends, backend);
}

}  // namespace ferry::transport
