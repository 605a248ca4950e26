#include "ferry/collective/group_manager.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "ferry/transport/fake_transport.h"

namespace ferry::collective {
namespace {

// Collects one transfer's completion.
struct Completion {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Status> status;
  std::function<void(Status)> Fn(std::function<void(Status)> also = nullptr) {
    return [this, also](Status s) {
      if (also) also(s);
      std::lock_guard<std::mutex> lock(mu);
      status = s;
      cv.notify_all();
    };
  }
  Status Wait() {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return status.has_value(); }));
    return status.value_or(Status::DeadlineExceeded("no completion"));
  }
};

TEST(GroupManagerTest, MissingGroupNamesCreateCollectiveGroup) {
  GroupManager groups;
  auto t = groups.Get("g");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(t.status().message().find("create_collective_group"), std::string::npos);
}

TEST(GroupManagerTest, ListsMembershipsWithRankAndWhyDestroyed) {
  transport::FakeTransportGroup fake(2);
  GroupManager groups;
  proto::JoinGroup join;
  join.set_backend("gloo");
  join.set_rank(1);
  join.set_size(2);
  join.set_kv_prefix("rendezvous/secret");
  groups.Adopt("g", fake.Transport(1), join);
  std::vector<GroupManager::Membership> list = groups.List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].join.name(), "g");
  EXPECT_EQ(list[0].join.backend(), "gloo");
  EXPECT_EQ(list[0].join.rank(), 1);
  EXPECT_EQ(list[0].join.size(), 2);
  EXPECT_EQ(list[0].join.kv_prefix(), "") << "rendezvous keys are not state";
  EXPECT_TRUE(list[0].destroyed.ok());

  groups.Destroy("g", Status::Unavailable("peer died"));
  list = groups.List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].destroyed.message(), "peer died");
  groups.Leave("g");
  EXPECT_TRUE(groups.List().empty());
}

TEST(GroupManagerTest, TransferThroughAdoptedGroup) {
  transport::FakeTransportGroup fake(2);
  GroupManager a, b;
  a.Adopt("g", fake.Transport(0));
  b.Adopt("g", fake.Transport(1));
  std::vector<uint8_t> src = {1, 2, 3, 4}, dst(4, 0);
  Completion sent, received;
  (*a.Get("g"))->Send(1, 7, {{src.data(), src.size()}}, sent.Fn());
  (*b.Get("g"))->Recv(0, 7, {{dst.data(), dst.size()}}, received.Fn());
  EXPECT_TRUE(sent.Wait().ok());
  EXPECT_TRUE(received.Wait().ok());
  EXPECT_EQ(src, dst);
  EXPECT_EQ(a.Names(), std::vector<std::string>{"g"});
}

// A system error destroys the group — from inside the failing transfer's
// callback, as CoreWorker does — and later use says why; re-adopting works.
TEST(GroupManagerTest, FailureDestroysGroupFromItsOwnCallback) {
  transport::FakeTransportGroup fake(2);
  GroupManager groups;
  groups.Adopt("g", fake.Transport(0));
  fake.FailNextTransfer(Status::Unavailable("peer died"));
  std::vector<uint8_t> buf(8);
  Completion done;
  (*groups.Get("g"))->Send(1, 1, {{buf.data(), buf.size()}}, done.Fn([&](Status s) {
    groups.Destroy("g", s);
  }));
  EXPECT_EQ(done.Wait().code(), StatusCode::kUnavailable);
  auto after = groups.Get("g");
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable) << "the system error's code";
  EXPECT_NE(after.status().message().find("destroyed"), std::string::npos);
  EXPECT_NE(after.status().message().find("peer died"), std::string::npos);
  EXPECT_TRUE(groups.Names().empty());

  transport::FakeTransportGroup fresh(1);
  groups.Adopt("g", fresh.Transport(0));
  EXPECT_TRUE(groups.Get("g").ok());
  groups.Clear();
}

TEST(GroupManagerTest, LeaveFailsPendingTransfers) {
  transport::FakeTransportGroup fake(2);
  GroupManager groups;
  groups.Adopt("g", fake.Transport(0));
  std::vector<uint8_t> buf(8);
  Completion pending;
  (*groups.Get("g"))->Recv(1, 3, {{buf.data(), buf.size()}}, pending.Fn());
  groups.Leave("g");
  EXPECT_FALSE(pending.Wait().ok());
  EXPECT_FALSE(groups.Get("g").ok());
}

}  // namespace
}  // namespace ferry::collective
