#include "ferry/core/transfer_log.h"

#include <gtest/gtest.h>

#include <thread>

namespace ferry::core {
namespace {

TransferRecord Record(uint64_t bytes) {
  TransferRecord r;
  r.object_id = ObjectId::Random();
  r.transport = "shm";
  r.bytes = bytes;
  return r;
}

TEST(TransferLogTest, KeepsTheMostRecentRecordsOldestFirst) {
  TransferLog log(3);
  for (uint64_t i = 1; i <= 5; ++i) log.Add(Record(i));
  std::vector<TransferRecord> recent = log.Recent();
  ASSERT_EQ(recent.size(), 3u);
  EXPECT_EQ(recent[0].bytes, 3u);
  EXPECT_EQ(recent[2].bytes, 5u);
  EXPECT_EQ(log.total(), 5u);
}

TEST(TransferLogTest, StampsTheEndTimeUnlessGiven) {
  TransferLog log(2);
  const auto before = std::chrono::system_clock::now();
  log.Add(Record(1));
  TransferRecord given = Record(2);
  given.end_time = std::chrono::system_clock::time_point(std::chrono::seconds(1000));
  log.Add(given);
  std::vector<TransferRecord> recent = log.Recent();
  EXPECT_GE(recent[0].end_time, before);
  EXPECT_EQ(recent[1].end_time, given.end_time);
}

TEST(TransferLogTest, SumsEveryTransferPerPathAndDirection) {
  TransferLog log(1);
  log.Add(Record(10));
  log.Add(Record(5));
  TransferRecord failed = Record(7);
  failed.error = "peer died";
  log.Add(failed);
  TransferRecord sent = Record(3);
  sent.direction = "send";
  log.Add(sent);
  std::vector<TransferLog::Totals> sums = log.Sums();
  ASSERT_EQ(sums.size(), 2u);
  EXPECT_EQ(sums[0].direction, "recv");
  EXPECT_EQ(sums[0].count, 3u);
  EXPECT_EQ(sums[0].bytes, 22u);
  EXPECT_EQ(sums[0].failures, 1u);
  EXPECT_EQ(sums[1].direction, "send");
  EXPECT_EQ(sums[1].bytes, 3u);
}

TEST(TransferLogTest, ZeroCapacityCountsButKeepsNothing) {
  TransferLog log(0);
  log.Add(Record(1));
  EXPECT_TRUE(log.Recent().empty());
  EXPECT_EQ(log.total(), 1u);
}

TEST(TransferLogTest, ConcurrentAddsAreAllCounted) {
  TransferLog log(100);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 250; ++i) log.Add(Record(1));
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(log.total(), 1000u);
  EXPECT_EQ(log.Recent().size(), 100u);
}

}  // namespace
}  // namespace ferry::core
