// A user's one-sided transport registered at run time: its table entry, its
// factory, and the inputs registration refuses. (A binary of its own: the
// registrations here would change the table other tests list.)
#include <gtest/gtest.h>

#include <atomic>

#include "ferry/transport/fake_one_sided_transport.h"
#include "ferry/transport/registry.h"
#include "ferry/transport/transport_table.h"

namespace ferry::transport {
namespace {

class CustomTransportTest : public ::testing::Test {
 protected:
  OneSidedFactory Fake(const std::string& name) {
    return [this, name]() -> StatusOr<std::unique_ptr<OneSidedTransport>> {
      ++made_;
      return fabric_.Transport(name, "process-" + std::to_string(made_.load()));
    };
  }

  FakeOneSidedFabric fabric_;
  std::atomic<int> made_{0};
};

TEST_F(CustomTransportTest, ARegisteredTransportIsUsableByNameLikeABuiltInOne) {
  ASSERT_TRUE(RegisterOneSidedTransport("my_tcp", {"cpu"}, Fake("my_tcp")).ok());

  const TransportInfo* info = FindTransport("my_tcp");
  ASSERT_NE(info, nullptr);
  EXPECT_TRUE(info->custom);
  EXPECT_TRUE(IsCustom("my_tcp"));
  EXPECT_FALSE(IsCustom("shm"));
  EXPECT_TRUE(info->available);
  EXPECT_EQ(info->kind, TransportKind::kOneSided);
  EXPECT_EQ(info->one_sided_backends, std::vector<std::string>{"my_tcp"});
  EXPECT_TRUE(IsOneSided("my_tcp"));
  EXPECT_TRUE(CheckTensorTransport("my_tcp").ok());
  EXPECT_EQ(AvailableTensorTransports().back(), "my_tcp");
  EXPECT_EQ(Transports().back().name, "my_tcp");

  auto made = CreateOneSidedTransport("my_tcp");
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ((*made)->name(), "my_tcp");
  EXPECT_EQ(made_, 1);

  // It moves bytes: the factory's transport is the one pulls use.
  auto producer = CreateOneSidedTransport("my_tcp");
  ASSERT_TRUE(producer.ok());
  char src[4] = {'f', 'e', 'r', 'y'};
  char dst[4] = {};
  auto exported = (*producer)->Export({{src, sizeof src}});
  ASSERT_TRUE(exported.ok());
  PullItem item{exported->endpoint, exported->descriptors[0], {dst, sizeof dst}};
  ASSERT_TRUE((*made)->Pull({&item, 1}, Deadline::After(std::chrono::seconds(5))).ok());
  EXPECT_EQ(std::string(dst, 4), "fery");
}

TEST_F(CustomTransportTest, ItsDevicesAreCheckedLikeABuiltInTransportsDevices) {
  ASSERT_TRUE(RegisterOneSidedTransport("cpu_only", {"cpu"}, Fake("cpu_only")).ok());
  EXPECT_TRUE(CheckTensorDevice("cpu_only", "cpu").ok());
  Status s = CheckTensorDevice("cpu_only", "cuda:0");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("tensor_transport='cpu_only' moves CPU tensors only"),
            std::string::npos)
      << s;
}

TEST_F(CustomTransportTest, RegisteringTheSameEntryAgainIsOkAndADifferentOneIsRefused) {
  ASSERT_TRUE(RegisterOneSidedTransport("twice", {"cpu"}, Fake("twice")).ok());
  EXPECT_TRUE(RegisterOneSidedTransport("twice", {"cpu"}, Fake("twice")).ok());
  EXPECT_EQ(RegisterOneSidedTransport("twice", {"cpu", "cuda"}, Fake("twice")).code(),
            StatusCode::kAlreadyExists);
  size_t n = 0;
  for (const TransportInfo& t : Transports()) n += t.name == "twice" ? 1 : 0;
  EXPECT_EQ(n, 1u);
}

TEST_F(CustomTransportTest, BadNamesDevicesAndBuiltInNamesAreRefused) {
  for (const char* name : {"", "MyTcp", "my-tcp", "a b"}) {
    Status s = RegisterOneSidedTransport(name, {"cpu"}, Fake(name));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(s.message().find("lower-case letters"), std::string::npos) << s;
  }
  Status builtin = RegisterOneSidedTransport("shm", {"cpu"}, Fake("shm"));
  EXPECT_EQ(builtin.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(builtin.message().find("built into ferry"), std::string::npos) << builtin;
  EXPECT_EQ(RegisterOneSidedTransport("no_devices", {}, Fake("x")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(RegisterOneSidedTransport("bad_device", {"CPU:0"}, Fake("x")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(RegisterOneSidedTransport("no_factory", {"cpu"}, nullptr).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(FindTransport("no_devices"), nullptr);
  EXPECT_EQ(FindTransport("no_factory"), nullptr);
}

TEST_F(CustomTransportTest, AFactorysErrorIsReturnedAsItIs) {
  ASSERT_TRUE(RegisterOneSidedTransport("broken", {"cpu"},
                                        []() -> StatusOr<std::unique_ptr<OneSidedTransport>> {
                                          return Status::Unavailable("the fabric is down");
                                        })
                  .ok());
  auto made = CreateOneSidedTransport("broken");
  EXPECT_EQ(made.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(made.status().message(), "the fabric is down");
}

TEST_F(CustomTransportTest, AnUnregisteredNameIsStillUnknown) {
  EXPECT_EQ(FindTransport("never_registered"), nullptr);
  EXPECT_EQ(CreateOneSidedTransport("never_registered").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckTensorTransport("never_registered").code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace ferry::transport
