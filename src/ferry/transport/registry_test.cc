#include "ferry/transport/registry.h"

#include <gtest/gtest.h>

#include "ferry/transport/in_memory_rendezvous_store.h"

namespace ferry::transport {
namespace {

TransportOptions SoloOptions(const std::string& prefix) {
  TransportOptions options;
  options.prefix = prefix;
  options.rank = 0;
  options.size = 1;
  options.connect_timeout = std::chrono::seconds(10);
  return options;
}

TEST(RegistryTest, UnknownBackendListsValidNames) {
  InMemoryRendezvousStore store;
  for (const char* name : {"", "Gloo", "ucx", "gloo "}) {
    auto t = CreateTwoSidedTransport(name, store, SoloOptions("unknown"));
    ASSERT_FALSE(t.ok()) << name;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(t.status().message().find("gloo, torch_gloo, nccl"), std::string::npos) << t.status();
  }
}

TEST(RegistryTest, NcclIsUnimplementedOnThisBuild) {
  InMemoryRendezvousStore store;
  auto t = CreateTwoSidedTransport("nccl", store, SoloOptions("nccl"));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(t.status().message().find("CUDA"), std::string::npos) << t.status();
}

#ifdef FERRY_HAVE_GLOO
TEST(RegistryTest, GlooAndTorchGlooAliasCreateTransports) {
  InMemoryRendezvousStore store;
  for (const char* name : {"gloo", "torch_gloo"}) {
    auto t = CreateTwoSidedTransport(name, store, SoloOptions(std::string("solo-") + name));
    ASSERT_TRUE(t.ok()) << name << ": " << t.status();
    EXPECT_EQ((*t)->rank(), 0);
    EXPECT_EQ((*t)->size(), 1);
  }
}

TEST(RegistryTest, BadRankIsInvalidArgument) {
  InMemoryRendezvousStore store;
  auto options = SoloOptions("bad-rank");
  options.rank = 3;
  auto t = CreateTwoSidedTransport("gloo", store, options);
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
}
#endif

}  // namespace
}  // namespace ferry::transport
