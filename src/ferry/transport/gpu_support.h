// What this process can do with GPUs: whether the CUDA runtime and NCCL
// load, how many devices it sees, their versions, and why not when it
// cannot. ferry.experimental.gpu_info() and gpu_available() show it.
//
// Thread contract: thread-safe; each call asks the runtime again for the
// device count (cheap), the libraries load once.
#pragma once

#include <string>

namespace ferry::transport {

struct GpuSupport {
  bool cuda = false;  // the runtime loads and at least one device is visible
  int devices = 0;
  std::string cuda_library;  // the runtime's file; empty when none loads
  int driver_version = 0;    // 13000 for 13.0; 0 without a driver
  int runtime_version = 0;
  bool nccl = false;  // NCCL loads (it also needs `cuda` to do anything)
  std::string nccl_library;
  int nccl_version = 0;
  // Why `cuda` (or else `nccl`) is false; empty when both are true.
  std::string reason;
};

GpuSupport ProbeGpuSupport();

}  // namespace ferry::transport
