#include "ferry/transport/gpu_support.h"

#include "ferry/tensor/cuda_runtime.h"
#include "ferry/transport/nccl/nccl_library.h"

namespace ferry::transport {

GpuSupport ProbeGpuSupport() {
  GpuSupport out;
  std::string cuda_reason, nccl_reason;
  auto cuda = tensor::CudaRuntime::Get();
  if (cuda.ok()) {
    out.cuda_library = (*cuda)->library();
    out.driver_version = (*cuda)->DriverVersion();
    out.runtime_version = (*cuda)->RuntimeVersion();
    auto devices = (*cuda)->DeviceCount();
    if (devices.ok()) {
      out.cuda = true;
      out.devices = *devices;
    } else {
      cuda_reason = devices.status().message();
    }
  } else {
    cuda_reason = cuda.status().message();
  }
  auto nccl = NcclLibrary::Get();
  if (nccl.ok()) {
    out.nccl = true;
    out.nccl_library = (*nccl)->library();
    out.nccl_version = (*nccl)->Version();
  } else {
    nccl_reason = nccl.status().message();
  }
  out.reason = !cuda_reason.empty() ? cuda_reason : nccl_reason;
  return out;
}

}  // namespace ferry::transport
