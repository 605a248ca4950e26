#include "ferry/transport/nccl/nccl_library.h"

#include "ferry/common/dynamic_library.h"

namespace ferry::transport {
namespace {

StatusOr<const NcclLibrary*> Load(NcclLibrary* nccl, std::string* library) {
  auto lib = DynamicLibrary::OpenConfigured("FERRY_NCCL_LIBRARY", {"libnccl.so.2", "libnccl.so"});
  if (!lib.ok())
    return Status::FailedPrecondition("NCCL is not available: " + lib.status().message());
  Status bound = (*lib)->Bind("ncclGetVersion", &nccl->GetVersion);
  if (bound.ok()) bound = (*lib)->Bind("ncclGetErrorString", &nccl->GetErrorString);
  if (!bound.ok()) {
    return Status::FailedPrecondition("NCCL at " + (*lib)->path() +
                                      " is not usable: " + bound.message());
  }
  *library = (*lib)->path();
  return nccl;
}

}  // namespace

StatusOr<const NcclLibrary*> NcclLibrary::Get() {
  static NcclLibrary* nccl = new NcclLibrary();  // never unloaded
  static StatusOr<const NcclLibrary*> loaded = Load(nccl, &nccl->library_);
  return loaded;
}

int NcclLibrary::Version() const {
  int version = 0;
  return GetVersion(&version) == 0 ? version : 0;
}

}  // namespace ferry::transport
