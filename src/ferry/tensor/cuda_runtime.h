// CudaRuntime: the CUDA runtime API (libcudart), loaded at run time, so one
// build runs on hosts with and without a GPU and needs no CUDA toolkit to
// build. Only the calls ferry makes are bound; they keep the runtime's C
// signatures, with cudaError_t as int (0 is cudaSuccess). When the toolkit
// is present the build checks these signatures against its headers
// (transport/gpu_abi_check.cc).
//
// The library: FERRY_CUDART_LIBRARY if set (a path or a soname), else the
// first of libcudart.so, libcudart.so.13, libcudart.so.12 that loads. A
// process that already loaded one (torch does) gets that one.
//
// Thread contract: Get() is thread-safe and loads once; the object is
// immutable and lives for the process.
//
//   FERRY_ASSIGN_OR_RETURN(const CudaRuntime* cuda, CudaRuntime::Get());
//   FERRY_ASSIGN_OR_RETURN(int devices, cuda->DeviceCount());
#pragma once

#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry::tensor {

class CudaRuntime {
 public:
  // FailedPrecondition saying what was tried when no runtime loads or one
  // lacks a call ferry needs.
  static StatusOr<const CudaRuntime*> Get();

  // Ok for 0; otherwise FailedPrecondition naming `call` and the runtime's
  // message for `error`.
  Status Check(int error, std::string_view call) const;
  // The devices this process may use; FailedPrecondition saying why when it
  // may use none (no driver, no device, CUDA_VISIBLE_DEVICES empty).
  StatusOr<int> DeviceCount() const;
  // cudaDriverGetVersion / cudaRuntimeGetVersion: 13000 for 13.0; 0 when
  // there is no driver.
  int DriverVersion() const;
  int RuntimeVersion() const;
  const std::string& library() const { return library_; }

  int (*GetDeviceCount)(int* count) = nullptr;
  int (*DriverGetVersion)(int* version) = nullptr;
  int (*RuntimeGetVersion)(int* version) = nullptr;
  const char* (*GetErrorString)(int error) = nullptr;

 private:
  CudaRuntime() = default;
  std::string library_;
};

}  // namespace ferry::tensor
