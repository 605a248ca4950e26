#include "ferry/common/work_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace ferry {
namespace {

TEST(WorkQueueTest, RunsInPostOrderAndDrainsOnClose) {
  std::vector<int> seen;
  {
    WorkQueue q("test");
    for (int i = 0; i < 100; ++i) q.Post([&seen, i] { seen.push_back(i); });
    q.Close();
    q.Join();
    EXPECT_FALSE(q.Post([] {}));
  }
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
}

TEST(WorkQueueTest, DestructorIsSafeWithoutClose) {
  std::atomic<int> n{0};
  {
    WorkQueue q("test");
    q.Post([&] { n++; });
  }
  EXPECT_EQ(n.load(), 1);
}

}  // namespace
}  // namespace ferry
