#include "ferry/tensor/cuda_runtime.h"

#include <gtest/gtest.h>

namespace ferry::tensor {
namespace {

// The same build runs with and without a CUDA runtime and a GPU: each case
// says what it found, and what it found must be consistent.
TEST(CudaRuntimeTest, LoadsOrSaysWhyAndCountsDevicesOrSaysWhy) {
  auto cuda = CudaRuntime::Get();
  if (!cuda.ok()) {
    EXPECT_EQ(cuda.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(cuda.status().message().find("the CUDA runtime is not available"), std::string::npos)
        << cuda.status();
    EXPECT_NE(cuda.status().message().find("libcudart.so"), std::string::npos);
    GTEST_SKIP() << "no CUDA runtime here: " << cuda.status();
  }
  EXPECT_FALSE((*cuda)->library().empty());
  EXPECT_GT((*cuda)->RuntimeVersion(), 0);  // the runtime knows its own version
  EXPECT_EQ(*CudaRuntime::Get(), *cuda) << "loaded once";
  auto devices = (*cuda)->DeviceCount();
  if (devices.ok()) {
    EXPECT_GT(*devices, 0);
    EXPECT_GT((*cuda)->DriverVersion(), 0);
  } else {
    EXPECT_EQ(devices.status().code(), StatusCode::kFailedPrecondition);
    std::string why = devices.status().message();
    EXPECT_TRUE(why.find("cudaGetDeviceCount failed: ") == 0 ||
                why == "no CUDA device is visible to this process")
        << why;
  }
}

TEST(CudaRuntimeTest, CheckNamesTheCallAndTheRuntimesMessage) {
  auto cuda = CudaRuntime::Get();
  if (!cuda.ok()) GTEST_SKIP() << cuda.status();
  EXPECT_TRUE((*cuda)->Check(0, "cudaMalloc").ok());
  Status s = (*cuda)->Check(2, "cudaMalloc");  // cudaErrorMemoryAllocation
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "cudaMalloc failed: out of memory");
}

}  // namespace
}  // namespace ferry::tensor
