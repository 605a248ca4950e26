#include "ferry/rpc/channel_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "ferry/rpc/server.h"
#include "ferry/rpc/test_util.h"

namespace ferry::rpc {
namespace {

using namespace testing;  // NOLINT: test helpers

class ChannelCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_.Start();
    held_ = std::make_shared<HeldResponders>();
    ServerOptions options;
    options.token = "t";
    address_ = "unix:@ferry-cache-test-" + std::to_string(::getpid()) + "-" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name();
    auto server = Server::Listen(loop_, address_, options, MakeTestDispatcher(held_),
                                 [this](std::shared_ptr<Channel> ch) {
                                   std::lock_guard<std::mutex> lock(mu_);
                                   accepted_.push_back(std::move(ch));
                                 });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    proto::Hello hello;
    hello.set_token("t");
    cache_ = std::make_unique<ChannelCache>(loop_, hello, nullptr);
  }
  void TearDown() override {
    cache_->CloseAll();
    server_->Close();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : accepted_) c->Close();
    accepted_.clear();
  }
  size_t Accepted() {
    std::lock_guard<std::mutex> lock(mu_);
    return accepted_.size();
  }

  IoLoop loop_{"cache-test"};
  std::shared_ptr<HeldResponders> held_;
  std::string address_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<ChannelCache> cache_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Channel>> accepted_;
};

TEST_F(ChannelCacheTest, ReusesOneChannel) {
  auto a = cache_->Get(address_, Deadline::After(kWait));
  auto b = cache_->Get(address_, Deadline::After(kWait));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_TRUE((*a)->CallSync(kEcho, Msg("x"), Deadline::After(kWait)).ok());
  EXPECT_EQ(cache_->size(), 1u);
}

TEST_F(ChannelCacheTest, ConcurrentGetsShareOneConnect) {
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::vector<Channel*> got(kThreads, nullptr);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto ch = cache_->Get(address_, Deadline::After(kWait));
      EXPECT_TRUE(ch.ok()) << ch.status();
      if (ch.ok()) got[i] = ch->get();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 1; i < kThreads; ++i) EXPECT_EQ(got[i], got[0]);
  // The server saw exactly one handshake.
  auto probe = cache_->Get(address_, Deadline::After(kWait));
  ASSERT_TRUE(probe.ok());
  EXPECT_TRUE((*probe)->CallSync(kEcho, Msg("sync"), Deadline::After(kWait)).ok());
  EXPECT_EQ(Accepted(), 1u);
}

TEST_F(ChannelCacheTest, ClosedChannelIsReplaced) {
  auto a = cache_->Get(address_, Deadline::After(kWait));
  ASSERT_TRUE(a.ok());
  (*a)->Close();
  auto b = cache_->Get(address_, Deadline::After(kWait));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(a->get(), b->get());
  EXPECT_TRUE((*b)->CallSync(kEcho, Msg("y"), Deadline::After(kWait)).ok());
}

TEST_F(ChannelCacheTest, FailureIsReportedAndNotCached) {
  std::string nowhere = address_ + "-nobody";
  auto r = cache_->Get(nowhere, Deadline::After(kWait));
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(cache_->size(), 0u);
}

TEST_F(ChannelCacheTest, AddedChannelIsReturnedAndCloseAllClosesIt) {
  auto pair = MakePair(loop_, nullptr, MakeTestDispatcher(held_));
  cache_->Add("unix:@somewhere-else", pair.a);
  auto got = cache_->Get("unix:@somewhere-else", Deadline::After(kWait));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->get(), pair.a.get());
  cache_->CloseAll();
  EXPECT_TRUE(pair.a->IsClosed());
  EXPECT_EQ(cache_->size(), 0u);
  pair.b->Close();
}

}  // namespace
}  // namespace ferry::rpc
