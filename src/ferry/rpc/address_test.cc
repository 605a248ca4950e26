#include "ferry/rpc/address.h"

#include <gtest/gtest.h>

namespace ferry::rpc {
namespace {

TEST(AddressTest, ParsesAndFormatsEveryForm) {
  for (const char* a : {"unix:@ferry-head", "unix:/tmp/x.sock", "tcp:127.0.0.1:8080",
                        "tcp:0.0.0.0:0", "tcp:[::1]:9"}) {
    auto parsed = ParseAddress(a);
    ASSERT_TRUE(parsed.ok()) << a << ": " << parsed.status();
    EXPECT_EQ(parsed->ToString(), a);
  }
}

TEST(AddressTest, TcpDefaultsToLoopback) {
  EXPECT_EQ(ParseAddress("tcp:5000")->ToString(), "tcp:127.0.0.1:5000");
  EXPECT_EQ(ParseAddress("tcp::5000")->ToString(), "tcp:127.0.0.1:5000");
  EXPECT_EQ(ParseAddress("tcp:localhost:5000")->ToString(), "tcp:127.0.0.1:5000");
  EXPECT_TRUE(ParseAddress("tcp:5000")->IsTcp());
}

TEST(AddressTest, AbstractHasNoPathToUnlink) {
  EXPECT_EQ(ParseAddress("unix:@x")->UnixPath(), "");
  EXPECT_EQ(ParseAddress("unix:/tmp/y")->UnixPath(), "/tmp/y");
}

TEST(AddressTest, AddressListsSplitInOrder) {
  EXPECT_EQ(SplitAddressList("unix:@a,tcp:10.0.0.2:5"),
            (std::vector<std::string>{"unix:@a", "tcp:10.0.0.2:5"}));
  EXPECT_EQ(SplitAddressList("unix:@a"), (std::vector<std::string>{"unix:@a"}));
  EXPECT_EQ(SplitAddressList(",unix:@a,,"), (std::vector<std::string>{"unix:@a"}));
  EXPECT_TRUE(SplitAddressList("").empty());
  EXPECT_EQ(TcpAddressOf("unix:@a,tcp:10.0.0.2:5"), "tcp:10.0.0.2:5");
  EXPECT_EQ(TcpAddressOf("unix:@a"), "");
}

TEST(AddressTest, RejectsMalformed) {
  for (const char* a : {"", "unix:", "unix:@", "tcp:", "tcp:1.2.3.4:", "tcp:1.2.3.4:70000",
                        "tcp:example.com:80", "http://x", "tcp:1.2.3.4:12ab"}) {
    auto parsed = ParseAddress(a);
    EXPECT_FALSE(parsed.ok()) << a;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    }
  }
  EXPECT_FALSE(ParseAddress("unix:@" + std::string(200, 'a')).ok());
}

}  // namespace
}  // namespace ferry::rpc
