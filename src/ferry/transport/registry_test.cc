#include "ferry/transport/registry.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "ferry/config.h"
#include "ferry/transport/in_memory_rendezvous_store.h"
#include "ferry/transport/transport_table.h"

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

std::vector<std::string> Names() {
  std::vector<std::string> names;
  for (const TransportInfo& t : Transports()) names.push_back(t.name);
  return names;
}

bool Has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

TEST(TransportTableTest, ListsEveryTransportOnceInOrder) {
  EXPECT_EQ(Names(), (std::vector<std::string>{"object_store", "gloo", "nccl", "nixl", "shm",
                                               "cuda_ipc", "auto"}));
}

TEST(TransportTableTest, KindOfEachName) {
  for (const char* name : {"", "object_store"}) {
    EXPECT_TRUE(IsObjectStore(name)) << name;
    EXPECT_FALSE(IsOneSided(name) || IsTwoSided(name)) << name;
  }
  for (const char* name : {"gloo", "nccl"}) {
    EXPECT_TRUE(IsTwoSided(name)) << name;
    EXPECT_FALSE(IsOneSided(name) || IsObjectStore(name)) << name;
  }
  for (const char* name : {"nixl", "shm", "cuda_ipc", "auto"}) {
    EXPECT_TRUE(IsOneSided(name)) << name;
    EXPECT_FALSE(IsTwoSided(name) || IsObjectStore(name)) << name;
  }
  // Names are exact; a collective backend is not a transport.
  for (const char* name : {"Gloo", "gloo ", "torch_gloo", "ucx", "tcp"}) {
    EXPECT_EQ(FindTransport(name), nullptr) << name;
    EXPECT_FALSE(IsObjectStore(name) || IsOneSided(name) || IsTwoSided(name)) << name;
  }
  EXPECT_EQ(FindTransport("")->name, "object_store");
  EXPECT_EQ(TransportKindName(FindTransport("auto")->kind), "one_sided");
  EXPECT_EQ(TransportKindName(FindTransport("nccl")->kind), "two_sided");
  EXPECT_EQ(TransportKindName(FindTransport("")->kind), "object_store");
}

TEST(TransportTableTest, AvailabilityFollowsTheBuildConfiguration) {
  EXPECT_TRUE(FindTransport("object_store")->available);
  EXPECT_EQ(FindTransport("gloo")->available, FERRY_HAVE_GLOO == 1);
  EXPECT_EQ(FindTransport("nixl")->available, FERRY_HAVE_UCX == 1);
  EXPECT_EQ(FindTransport("shm")->available, FERRY_HAVE_SHM == 1);
  EXPECT_EQ(FindTransport("auto")->available, FERRY_HAVE_SHM == 1);
  EXPECT_FALSE(FindTransport("nccl")->available);
  EXPECT_FALSE(FindTransport("cuda_ipc")->available);
  std::vector<std::string> expected;
  for (const TransportInfo& t : Transports()) {
    if (t.available) expected.push_back(t.name);
  }
  EXPECT_EQ(AvailableTensorTransports(), expected);
  EXPECT_EQ(AvailableTensorTransports().front(), "object_store");
}

TEST(TransportTableTest, DevicesAndHosts) {
  EXPECT_EQ(FindTransport("gloo")->devices, std::vector<std::string>{"cpu"});
  EXPECT_EQ(FindTransport("nccl")->devices, std::vector<std::string>{"cuda"});
  EXPECT_EQ(FindTransport("cuda_ipc")->devices, std::vector<std::string>{"cuda"});
  EXPECT_TRUE(FindTransport("shm")->same_host);
  EXPECT_TRUE(FindTransport("cuda_ipc")->same_host);
  EXPECT_FALSE(FindTransport("nixl")->same_host);
  EXPECT_FALSE(FindTransport("auto")->same_host);  // nixl beyond this host
  EXPECT_EQ(FindTransport("auto")->one_sided_backends, (std::vector<std::string>{"shm", "nixl"}));
}

TEST(TransportTableTest, CheckTensorTransportNamesWhatThisBuildHas) {
  for (const std::string& name : AvailableTensorTransports()) {
    EXPECT_TRUE(CheckTensorTransport(name).ok()) << name;
  }
  EXPECT_TRUE(CheckTensorTransport("").ok());
  std::string available;
  for (const std::string& name : AvailableTensorTransports())
    available += (available.empty() ? "" : ", ") + name;
  for (const char* name : {"nccl", "cuda_ipc", "bogus"}) {
    Status s = CheckTensorTransport(name);
    EXPECT_EQ(s, Status::Unimplemented(
                     std::string("tensor_transport '") + name +
                     "' is not available in this build of ferry (available: " + available + ")"));
  }
}

TEST(TransportTableTest, CheckTensorDeviceRefusesDevicesATransportDoesNotMove) {
  EXPECT_TRUE(CheckTensorDevice("gloo", "cpu").ok());
  EXPECT_TRUE(CheckTensorDevice("shm", "").ok());
  EXPECT_TRUE(CheckTensorDevice("object_store", "cuda:1").ok());
  EXPECT_TRUE(CheckTensorDevice("nccl", "cuda:0").ok());
  EXPECT_TRUE(CheckTensorDevice("bogus", "cuda:0").ok());  // CheckTensorTransport's job
  EXPECT_EQ(CheckTensorDevice("gloo", "cuda:0"),
            Status::InvalidArgument(
                "tensor_transport='gloo' moves CPU tensors only (CUDA tensors need "
                "tensor_transport='nccl', which this build lacks); got a tensor on "
                "cuda:0: move it to the CPU first"));
  EXPECT_EQ(CheckTensorDevice("nixl", "cuda:0"),
            Status::InvalidArgument(
                "tensor_transport='nixl' moves CPU tensors only (CUDA tensors need "
                "tensor_transport='cuda_ipc', which this build lacks); got a tensor on "
                "cuda:0: move it to the CPU first"));
  // No transport of that kind moves "meta" tensors: no hint.
  EXPECT_EQ(CheckTensorDevice("shm", "meta"),
            Status::InvalidArgument("tensor_transport='shm' moves CPU tensors only; got a tensor "
                                    "on meta: move it to the CPU first"));
}

TEST(TransportTableTest, CollectiveBackends) {
  EXPECT_EQ(CollectiveBackends(), (std::vector<std::string>{"gloo", "torch_gloo", "nccl"}));
  for (const std::string& b : CollectiveBackends())
    EXPECT_TRUE(CheckCollectiveBackend(b).ok()) << b;
  EXPECT_EQ(CheckCollectiveBackend("mpi"),
            Status::InvalidArgument(
                "unknown collective backend 'mpi'; valid: gloo, torch_gloo, nccl"));
  EXPECT_EQ(CheckCollectiveBackend("Gloo").code(), StatusCode::kInvalidArgument);
}

TEST(TransportTableTest, BackendServes) {
  EXPECT_TRUE(BackendServes("gloo", "gloo"));
  EXPECT_TRUE(BackendServes("torch_gloo", "gloo"));
  EXPECT_TRUE(BackendServes("nccl", "nccl"));
  EXPECT_FALSE(BackendServes("nccl", "gloo"));
  EXPECT_FALSE(BackendServes("gloo", "nccl"));
  EXPECT_FALSE(BackendServes("torch_gloo", "torch_gloo"));
  EXPECT_FALSE(BackendServes("shm", "shm"));  // one-sided: no group
  EXPECT_FALSE(BackendServes("gloo", ""));
}

TEST(RegistryTest, OneSidedBackendsAreTheTablesAvailableOnes) {
  std::vector<std::string> names = AvailableOneSidedTransports();
  EXPECT_FALSE(Has(names, "auto"));
  for (const std::string& name : names) {
    EXPECT_TRUE(IsOneSided(name) && FindTransport(name)->available) << name;
    EXPECT_TRUE(CreateOneSidedTransport(name).ok()) << name;
  }
  EXPECT_EQ(Has(names, "shm"), FERRY_HAVE_SHM == 1);
  EXPECT_EQ(Has(names, "nixl"), FERRY_HAVE_UCX == 1);
  auto bad = CreateOneSidedTransport("auto");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status(),
            Status::InvalidArgument(
                "unknown one-sided transport 'auto'; valid names: nixl, shm, cuda_ipc"));
  EXPECT_EQ(CreateOneSidedTransport("cuda_ipc").status().code(), StatusCode::kUnimplemented);
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

#if FERRY_HAVE_GLOO
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
