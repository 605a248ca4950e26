#include "ferry/testing/deadline.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace ferry::testing {
namespace {

using std::chrono::milliseconds;

TEST(WaitUntilTest, ReturnsOnceAnotherThreadMakesItTrue) {
  std::atomic<bool> flag{false};
  std::atomic<int> checks{0};
  std::thread setter([&] {
    // Set only after WaitUntil has looked and found it false.
    while (checks.load() < 1) std::this_thread::yield();
    flag = true;
  });
  EXPECT_TRUE(WaitUntil([&] {
    ++checks;
    return flag.load();
  }));
  setter.join();
  EXPECT_GE(checks.load(), 2);
}

TEST(WaitUntilTest, FalseOnceTheDeadlinePasses) {
  const auto start = Clock::now();
  EXPECT_FALSE(WaitUntil([] { return false; }, Deadline::After(milliseconds(50))));
  const auto took = Clock::now() - start;
  EXPECT_GE(took, milliseconds(50));
  EXPECT_LT(took, kSoon) << "returned at its own deadline, not the default";
}

TEST(WaitUntilTest, ChecksOnceEvenWhenTheDeadlineHasPassed) {
  int checks = 0;
  EXPECT_TRUE(WaitUntil(
      [&] {
        ++checks;
        return true;
      },
      Deadline::After(milliseconds(-1))));
  EXPECT_EQ(checks, 1);
}

}  // namespace
}  // namespace ferry::testing
