#include "ferry/transport/registry.h"

#ifdef FERRY_HAVE_GLOO
#include "ferry/transport/gloo/factory.h"
#endif

namespace ferry::transport {

std::vector<std::string> TwoSidedTransportBackends() { return {"gloo", "torch_gloo", "nccl"}; }

StatusOr<std::unique_ptr<TwoSidedTransport>> CreateTwoSidedTransport(const std::string& backend,
                                                                     RendezvousStore& store,
                                                                     const TransportOptions& options) {
  if (backend == "gloo" || backend == "torch_gloo") {
#ifdef FERRY_HAVE_GLOO
    GlooOptions gloo;
    gloo.prefix = options.prefix;
    gloo.rank = options.rank;
    gloo.size = options.size;
    gloo.hostname = options.hostname;
    gloo.timeout = options.connect_timeout;
    gloo.transfer_timeout = options.transfer_timeout;
    return CreateGlooTransport(store, gloo);
#else
    return Status::Unimplemented("transport backend '" + backend +
                                 "': ferry was built without Gloo (install libgloo-dev and rebuild)");
#endif
  }
  if (backend == "nccl") {
    return Status::Unimplemented(
        "transport backend 'nccl' is not available in this build: it needs CUDA and NCCL; "
        "use 'gloo' for CPU tensors");
  }
  std::string names;
  for (const auto& name : TwoSidedTransportBackends()) names += (names.empty() ? "" : ", ") + name;
  return Status::InvalidArgument("unknown two-sided transport backend '" + backend + "'; valid names: " + names);
}

}  // namespace ferry::transport
