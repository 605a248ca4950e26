#include "ferry/core/timeline.h"

#include <gtest/gtest.h>

namespace ferry::core {
namespace {

TaskSpan Span(const std::string& method) {
  TaskSpan s;
  s.method = method;
  s.arrived_us = Timeline::NowMicros();
  return s;
}

TEST(TimelineTest, KeepsTheMostRecentSpansOfEachKindAndCountsTheDropped) {
  Timeline timeline(2);
  for (const char* m : {"a", "b", "c"}) timeline.AddTask(Span(m));
  timeline.AddCall(CallSpan{.method = "call"});
  std::vector<TaskSpan> tasks = timeline.Tasks();
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0].method, "b");
  EXPECT_EQ(tasks[1].method, "c");
  ASSERT_EQ(timeline.Calls().size(), 1u) << "calls have a ring of their own";
  EXPECT_EQ(timeline.dropped(), 1u);
}

TEST(TimelineTest, ZeroCapacityIsOffAndKeepsNothing) {
  Timeline timeline(0);
  EXPECT_FALSE(timeline.enabled());
  timeline.AddTask(Span("a"));
  timeline.AddCall(CallSpan{});
  EXPECT_TRUE(timeline.Tasks().empty());
  EXPECT_TRUE(timeline.Calls().empty());
}

TEST(TimelineTest, CountsTasksFailuresAndCallsWhateverItsCapacity) {
  Timeline timeline(0);
  timeline.CountTask(false);
  timeline.CountTask(true);
  timeline.CountCall();
  EXPECT_EQ(timeline.totals().tasks, 2u);
  EXPECT_EQ(timeline.totals().task_failures, 1u);
  EXPECT_EQ(timeline.totals().calls, 1u);
}

TEST(TimelineTest, TimesAreUnixMicroseconds) {
  const int64_t now = Timeline::NowMicros();
  EXPECT_GT(now, int64_t{1'600'000'000} * 1'000'000);  // after 2020
  EXPECT_LT(now, int64_t{4'000'000'000} * 1'000'000);
}

}  // namespace
}  // namespace ferry::core
