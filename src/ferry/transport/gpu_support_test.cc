#include "ferry/transport/gpu_support.h"

#include <gtest/gtest.h>

#include "ferry/tensor/cuda_runtime.h"
#include "ferry/transport/nccl/nccl_library.h"

namespace ferry::transport {
namespace {

TEST(GpuSupportTest, AgreesWithTheLibrariesAndSaysWhyNot) {
  GpuSupport g = ProbeGpuSupport();
  auto cuda = tensor::CudaRuntime::Get();
  EXPECT_EQ(!g.cuda_library.empty(), cuda.ok());
  if (g.cuda) {
    EXPECT_GT(g.devices, 0);
    EXPECT_GT(g.driver_version, 0);
  } else {
    EXPECT_EQ(g.devices, 0);
    EXPECT_FALSE(g.reason.empty()) << "no GPU must come with a reason";
  }
  auto nccl = NcclLibrary::Get();
  EXPECT_EQ(g.nccl, nccl.ok());
  if (g.nccl) {
    EXPECT_GE(g.nccl_version, 20000) << "NCCL 2.x";
    EXPECT_NE(g.nccl_library.find("nccl"), std::string::npos);
  }
  if (g.cuda && g.nccl) {
    EXPECT_TRUE(g.reason.empty()) << g.reason;
  }
}

}  // namespace
}  // namespace ferry::transport
