#include "ferry/transport/registry.h"

#include <map>

#include "ferry/common/thread_annotations.h"
#include "ferry/config.h"
#include "ferry/transport/transport_table.h"

#if FERRY_HAVE_GLOO
#include "ferry/transport/gloo/factory.h"
#endif
#if FERRY_HAVE_SHM
#include "ferry/transport/shm/factory.h"
#endif
#if FERRY_HAVE_UCX
#include "ferry/transport/ucx/factory.h"
#endif

namespace ferry::transport {
namespace {

// A one-sided transport that is a backend of its own ("auto" is not: it
// exports with shm and nixl).
bool IsOneSidedBackend(const TransportInfo& t) {
  return t.kind == TransportKind::kOneSided &&
         t.one_sided_backends == std::vector<std::string>{t.name};
}

// The factories of the transports users registered, by name.
class CustomFactories {
 public:
  static CustomFactories& Get() {
    static CustomFactories* const factories = new CustomFactories();  // used until exit
    return *factories;
  }
  void Set(const std::string& name, OneSidedFactory make) {
    MutexLock lock(mu_);
    one_sided_[name] = std::move(make);
  }
  void Set(const std::string& name, TwoSidedFactory make) {
    MutexLock lock(mu_);
    two_sided_[name] = std::move(make);
  }
  OneSidedFactory FindOneSided(const std::string& name) {
    MutexLock lock(mu_);
    auto it = one_sided_.find(name);
    return it != one_sided_.end() ? it->second : nullptr;
  }
  TwoSidedFactory FindTwoSided(const std::string& name) {
    MutexLock lock(mu_);
    auto it = two_sided_.find(name);
    return it != two_sided_.end() ? it->second : nullptr;
  }

 private:
  Mutex mu_;
  std::map<std::string, OneSidedFactory, std::less<>> one_sided_ FERRY_GUARDED_BY(mu_);
  std::map<std::string, TwoSidedFactory, std::less<>> two_sided_ FERRY_GUARDED_BY(mu_);
};

}  // namespace

Status RegisterOneSidedTransport(const std::string& name, std::vector<std::string> devices,
                                 OneSidedFactory make) {
  if (!make) return Status::InvalidArgument("tensor transport '" + name + "': no factory");
  FERRY_RETURN_IF_ERROR(RegisterTransport({.name = name,
                                           .kind = TransportKind::kOneSided,
                                           .devices = std::move(devices),
                                           .one_sided_backends = {name}}));
  CustomFactories::Get().Set(name, std::move(make));
  return Status::Ok();
}

Status RegisterTwoSidedTransport(const std::string& name, std::vector<std::string> devices,
                                 TwoSidedFactory make) {
  if (!make) return Status::InvalidArgument("tensor transport '" + name + "': no factory");
  FERRY_RETURN_IF_ERROR(RegisterTransport({.name = name,
                                           .kind = TransportKind::kTwoSided,
                                           .devices = std::move(devices),
                                           .collective_backends = {name}}));
  CustomFactories::Get().Set(name, std::move(make));
  return Status::Ok();
}

StatusOr<std::unique_ptr<TwoSidedTransport>> CreateTwoSidedTransport(
    const std::string& backend, RendezvousStore& store, const TransportOptions& options) {
  if (BackendServes(backend, "gloo")) {
#if FERRY_HAVE_GLOO
    GlooOptions gloo;
    gloo.prefix = options.prefix;
    gloo.rank = options.rank;
    gloo.size = options.size;
    gloo.hostname = options.hostname;
    gloo.timeout = options.connect_timeout;
    gloo.transfer_timeout = options.transfer_timeout;
    return CreateGlooTransport(store, gloo);
#else
    return Status::Unimplemented(
        "transport backend '" + backend +
        "': ferry was built without Gloo (install libgloo-dev and rebuild)");
#endif
  }
  if (TwoSidedFactory make = CustomFactories::Get().FindTwoSided(backend)) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<TwoSidedTransport> t, make(store, options));
    if (t == nullptr) {
      return Status::Internal("tensor transport '" + backend + "': its factory made nothing");
    }
    return t;
  }
  if (backend == "nccl") {
    return Status::Unimplemented(
        "transport backend 'nccl' is not available in this build: it needs CUDA and NCCL; "
        "use 'gloo' for CPU tensors");
  }
  std::string names;
  for (const auto& name : CollectiveBackends()) names += (names.empty() ? "" : ", ") + name;
  return Status::InvalidArgument("unknown two-sided transport backend '" + backend +
                                 "'; valid names: " + names);
}

std::vector<std::string> AvailableOneSidedTransports() {
  std::vector<std::string> names;
  for (const TransportInfo& t : Transports()) {
    if (IsOneSidedBackend(t) && t.available) names.push_back(t.name);
  }
  return names;
}

StatusOr<std::unique_ptr<OneSidedTransport>> CreateOneSidedTransport(const std::string& name) {
  if (name == "nixl") {
#if FERRY_HAVE_UCX
    return CreateUcxTransport();
#else
    return Status::Unimplemented(
        "tensor transport 'nixl': ferry was built without UCX (install libucx-dev and rebuild)");
#endif
  }
  if (name == "shm") {
#if FERRY_HAVE_SHM
    return std::unique_ptr<OneSidedTransport>(CreateShmTransport());
#else
    return Status::Unimplemented("tensor transport 'shm' is not available in this build");
#endif
  }
  if (OneSidedFactory make = CustomFactories::Get().FindOneSided(name)) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<OneSidedTransport> t, make());
    if (t == nullptr) {
      return Status::Internal("tensor transport '" + name + "': its factory made nothing");
    }
    return t;
  }
  if (name == "cuda_ipc") {
    return Status::Unimplemented(
        "tensor transport 'cuda_ipc' is not available in this build: it needs CUDA; use 'shm' or "
        "'nixl' for CPU tensors");
  }
  std::string names;
  for (const TransportInfo& t : Transports()) {
    if (IsOneSidedBackend(t)) names += (names.empty() ? "" : ", ") + t.name;
  }
  return Status::InvalidArgument("unknown one-sided transport '" + name +
                                 "'; valid names: " + names);
}

bool IsLocalEndpoint(const std::string& name, std::string_view endpoint) {
#if FERRY_HAVE_SHM
  if (name == "shm") return IsLocalShmEndpoint(endpoint);
#endif
  (void)name;
  (void)endpoint;
  return false;
}

void SetProcessEnvironmentDefaults() {
#if FERRY_HAVE_UCX
  SetUcxEnvironmentDefaults();
#endif
}

}  // namespace ferry::transport
