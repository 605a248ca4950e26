#include "ferry/transport/waiter_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <vector>

namespace ferry::transport {
namespace {

TEST(WaiterPoolTest, BlockedTasksDoNotDelayLaterOnes) {
  WaiterPool pool("test-pool");
  // Eight tasks each block until the last one runs: only a pool that gives
  // every waiting task its own thread finishes.
  constexpr int kTasks = 8;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::vector<std::promise<void>> done(kTasks);
  for (int i = 0; i < kTasks - 1; ++i) {
    pool.Submit([&, i] {
      released.wait();
      done[i].set_value();
    });
  }
  pool.Submit([&] {
    release.set_value();
    done[kTasks - 1].set_value();
  });
  for (auto& d : done) {
    ASSERT_EQ(d.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  }
  EXPECT_GE(pool.thread_count(), kTasks);
}

TEST(WaiterPoolTest, ReusesIdleThreadsAndRunsEverythingBeforeDestruction) {
  std::atomic<int> ran{0};
  {
    WaiterPool pool("test-pool");
    for (int i = 0; i < 100; ++i) {
      auto p = std::make_shared<std::promise<void>>();
      auto f = p->get_future();
      pool.Submit([&ran, p] {
        ++ran;
        p->set_value();
      });
      f.wait();
    }
    // Sequential tasks reuse threads. A Submit that races with a thread
    // finishing its previous task may start one more, so allow a few.
    EXPECT_LE(pool.thread_count(), 10);
    for (int i = 0; i < 50; ++i) pool.Submit([&] { ++ran; });
  }
  EXPECT_EQ(ran.load(), 150);
}

}  // namespace
}  // namespace ferry::transport
