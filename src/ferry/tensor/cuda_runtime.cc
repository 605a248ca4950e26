#include "ferry/tensor/cuda_runtime.h"

#include "ferry/common/dynamic_library.h"

namespace ferry::tensor {
namespace {

StatusOr<const CudaRuntime*> Load(CudaRuntime* runtime, std::string* library) {
  auto lib = DynamicLibrary::OpenConfigured("FERRY_CUDART_LIBRARY",
                                            {"libcudart.so", "libcudart.so.13", "libcudart.so.12"});
  if (!lib.ok()) {
    return Status::FailedPrecondition("the CUDA runtime is not available: " +
                                      lib.status().message());
  }
  Status bound = (*lib)->Bind("cudaGetDeviceCount", &runtime->GetDeviceCount);
  if (bound.ok()) bound = (*lib)->Bind("cudaDriverGetVersion", &runtime->DriverGetVersion);
  if (bound.ok()) bound = (*lib)->Bind("cudaRuntimeGetVersion", &runtime->RuntimeGetVersion);
  if (bound.ok()) bound = (*lib)->Bind("cudaGetErrorString", &runtime->GetErrorString);
  if (!bound.ok()) {
    return Status::FailedPrecondition("the CUDA runtime at " + (*lib)->path() +
                                      " is not usable: " + bound.message());
  }
  *library = (*lib)->path();
  return runtime;
}

}  // namespace

StatusOr<const CudaRuntime*> CudaRuntime::Get() {
  // Loaded once; never unloaded (a CUDA runtime does not survive dlclose).
  static CudaRuntime* runtime = new CudaRuntime();
  static StatusOr<const CudaRuntime*> loaded = Load(runtime, &runtime->library_);
  return loaded;
}

Status CudaRuntime::Check(int error, std::string_view call) const {
  if (error == 0) return Status::Ok();
  const char* what = GetErrorString(error);
  return Status::FailedPrecondition(
      std::string(call) + " failed: " + (what ? what : "CUDA error " + std::to_string(error)));
}

StatusOr<int> CudaRuntime::DeviceCount() const {
  int count = 0;
  FERRY_RETURN_IF_ERROR(Check(GetDeviceCount(&count), "cudaGetDeviceCount"));
  if (count == 0) return Status::FailedPrecondition("no CUDA device is visible to this process");
  return count;
}

int CudaRuntime::DriverVersion() const {
  int version = 0;
  return DriverGetVersion(&version) == 0 ? version : 0;
}

int CudaRuntime::RuntimeVersion() const {
  int version = 0;
  return RuntimeGetVersion(&version) == 0 ? version : 0;
}

}  // namespace ferry::tensor
