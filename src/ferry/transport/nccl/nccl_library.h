// NcclLibrary: NCCL (libnccl), loaded at run time like the CUDA runtime
// (tensor/cuda_runtime.h), so one build runs with and without it. Only the
// calls ferry makes are bound, with ncclResult_t as int (0 is ncclSuccess).
//
// The library: FERRY_NCCL_LIBRARY if set (a path or a soname), else the
// first of libnccl.so.2, libnccl.so that loads.
//
// Thread contract: Get() is thread-safe and loads once; the object is
// immutable and lives for the process.
#pragma once

#include <string>

#include "ferry/status.h"

namespace ferry::transport {

class NcclLibrary {
 public:
  // FailedPrecondition saying what was tried when NCCL does not load.
  static StatusOr<const NcclLibrary*> Get();

  // ncclGetVersion: 22703 for 2.27.3.
  int Version() const;
  const std::string& library() const { return library_; }

  int (*GetVersion)(int* version) = nullptr;
  const char* (*GetErrorString)(int result) = nullptr;

 private:
  NcclLibrary() = default;
  std::string library_;
};

}  // namespace ferry::transport
