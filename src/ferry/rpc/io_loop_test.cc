#include "ferry/rpc/io_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <vector>

#include "ferry/rpc/test_util.h"

namespace ferry::rpc {
namespace {

using testing::Waiter;

TEST(IoLoopTest, PostRunsOnTheLoopThreadInOrder) {
  IoLoop loop("test-io");
  EXPECT_FALSE(loop.Running());
  loop.Start();
  EXPECT_TRUE(loop.Running());
  EXPECT_FALSE(loop.InLoopThread());
  Waiter waiter;
  std::vector<int> order;
  std::atomic<bool> all_in_loop{true};
  for (int i = 0; i < 100; ++i) {
    loop.Post([&, i] {
      if (!loop.InLoopThread()) all_in_loop = false;
      {
        std::lock_guard<std::mutex> lock(waiter.mu());
        order.push_back(i);
      }
      waiter.Notify();
    });
  }
  ASSERT_TRUE(waiter.WaitFor([&] { return order.size() == 100; }));
  EXPECT_TRUE(all_in_loop);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
  loop.Stop();
  loop.Join();
  loop.Stop();  // idempotent
  loop.Join();
}

TEST(IoLoopTest, PostBeforeStartRunsAfterStart) {
  IoLoop loop;
  std::atomic<bool> ran{false};
  Waiter waiter;
  loop.Post([&] {
    ran = true;
    waiter.Notify();
  });
  loop.Start();
  EXPECT_TRUE(waiter.WaitFor([&] { return ran.load(); }));
  // The post may still be inside Notify(): stop the loop before `waiter` dies.
  loop.Stop();
  loop.Join();
}

TEST(IoLoopTest, DestructorIsSafeInAnyState) {
  { IoLoop never_started; }
  {
    IoLoop started;
    started.Start();
  }
  {
    IoLoop stopped;
    stopped.Start();
    stopped.Stop();
  }
  {
    IoLoop joined;
    joined.Start();
    joined.Stop();
    joined.Join();
    joined.Start();  // no restart after stop
    EXPECT_FALSE(joined.Running());
  }
}

// Busy polling must not change what the loop does: posts run in order whether
// the thread is polling (1 s budget), sleeping (1 µs budget: every post finds
// it asleep after the first) or never polls, and Stop ends a polling thread
// without waiting out its budget.
TEST(IoLoopTest, PollingAndSleepingLoopsRunPostsAndStop) {
  for (auto spin : {std::chrono::microseconds(0), std::chrono::microseconds(1),
                    std::chrono::microseconds(1'000'000)}) {
    SCOPED_TRACE(spin.count());
    IoLoop loop("test-io", spin);
    loop.Start();
    Waiter waiter;
    int done = 0;
    for (int i = 0; i < 20; ++i) {
      loop.Post([&] {
        {
          std::lock_guard<std::mutex> lock(waiter.mu());
          ++done;
        }
        waiter.Notify();
      });
      // One at a time: each post reaches a loop that has gone idle again.
      ASSERT_TRUE(waiter.WaitFor([&] { return done == i + 1; }));
    }
    auto start = std::chrono::steady_clock::now();
    loop.Stop();
    loop.Join();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
  }
}

}  // namespace
}  // namespace ferry::rpc
