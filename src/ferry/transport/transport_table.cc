#include "ferry/transport/transport_table.h"

#include <algorithm>
#include <cctype>
#include <deque>

#include "ferry/common/thread_annotations.h"
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

namespace {

// The built-in entries, then the registered ones. A deque: appending keeps
// the address of every entry, which FindTransport hands out.
class Table {
 public:
  static Table& Get() {
    static Table* const table = new Table();  // never destroyed: used until exit
    return *table;
  }

  std::vector<TransportInfo> Snapshot() {
    MutexLock lock(mu_);
    return {entries_.begin(), entries_.end()};
  }

  const TransportInfo* Find(std::string_view name) {
    MutexLock lock(mu_);
    for (const TransportInfo& t : entries_) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }

  Status Add(TransportInfo info) {
    MutexLock lock(mu_);
    for (const TransportInfo& t : entries_) {
      if (t.name != info.name) continue;
      if (!t.custom) {
        return Status::InvalidArgument("tensor transport '" + info.name +
                                       "' is built into ferry; register yours under another name");
      }
      if (t == info) return Status::Ok();
      return Status::AlreadyExists("tensor transport '" + info.name +
                                   "' is already registered with other devices or kind");
    }
    entries_.push_back(std::move(info));
    return Status::Ok();
  }

 private:
  Table() {
    for (TransportInfo& t : MakeTable()) entries_.push_back(std::move(t));
  }

  Mutex mu_;
  std::deque<TransportInfo> entries_ FERRY_GUARDED_BY(mu_);
};

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

std::vector<TransportInfo> Transports() { return Table::Get().Snapshot(); }

const TransportInfo* FindTransport(std::string_view name) {
  if (name.empty()) name = "object_store";
  return Table::Get().Find(name);
}

Status RegisterTransport(TransportInfo info) {
  if (!IsValidName(info.name)) {
    return Status::InvalidArgument(
        "a tensor transport's name is 1 to 64 lower-case letters, "
        "digits or '_'; got '" +
        info.name + "'");
  }
  if (info.devices.empty()) {
    return Status::InvalidArgument("tensor transport '" + info.name +
                                   "': list the device types it moves (for example \"cpu\")");
  }
  for (const std::string& d : info.devices) {
    if (!IsValidName(d)) {
      return Status::InvalidArgument("tensor transport '" + info.name + "': device type '" + d +
                                     "' is not a torch device type such as \"cpu\" or \"cuda\"");
    }
  }
  if (info.kind == TransportKind::kObjectStore) {
    return Status::InvalidArgument("tensor transport '" + info.name +
                                   "': a registered transport is one-sided or two-sided");
  }
  info.custom = true;
  info.available = true;
  return Table::Get().Add(std::move(info));
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

bool IsCustom(std::string_view name) {
  const TransportInfo* t = FindTransport(name);
  return t != nullptr && t->custom;
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
