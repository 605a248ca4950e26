#include "ferry/object/segment_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ferry/object/shm_mapping.h"
#include "ferry/testing/child_process.h"
#include "ferry/testing/deadline.h"

namespace ferry::object {
namespace {

using testing::ChildProcess;
using testing::MessageChannel;
using testing::Soon;
using namespace std::chrono_literals;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;

TEST(SegmentPoolTest, RoundCapacity) {
  EXPECT_EQ(SegmentPool::RoundCapacity(1), 64 * kKiB);
  EXPECT_EQ(SegmentPool::RoundCapacity(64 * kKiB), 64 * kKiB);
  EXPECT_EQ(SegmentPool::RoundCapacity(64 * kKiB + 1), 128 * kKiB);
  EXPECT_EQ(SegmentPool::RoundCapacity(2 * kMiB), 2 * kMiB);
  EXPECT_EQ(SegmentPool::RoundCapacity(2 * kMiB + 1), 4 * kMiB);
  EXPECT_EQ(SegmentPool::RoundCapacity(256 * kMiB), 256 * kMiB);
}

TEST(SegmentPoolTest, ReusesReleasedSegment) {
  SegmentPool pool(64 * kMiB);
  auto a = pool.Acquire(3 * kMiB);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ((*a)->capacity(), 4 * kMiB);
  uint8_t* pages = (*a)->data();
  pages[0] = 5;
  pool.Release(std::move(*a));
  EXPECT_EQ(pool.GetStats().pooled_bytes, static_cast<int64_t>(4 * kMiB));

  auto b = pool.Acquire(3 * kMiB + 100);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->data(), pages) << "expected the pooled segment back";
  EXPECT_EQ((*b)->data()[0], 5) << "reused segments keep their (warm) bytes";
  auto s = pool.GetStats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.pooled_bytes, 0);
  EXPECT_EQ(s.pooled_segments, 0u);
}

TEST(SegmentPoolTest, BestFitWithinTwiceTheSize) {
  SegmentPool pool(1024 * kMiB);
  auto big = pool.Acquire(64 * kMiB);
  auto mid = pool.Acquire(16 * kMiB);
  auto small = pool.Acquire(8 * kMiB);
  ASSERT_TRUE(big.ok() && mid.ok() && small.ok());
  uint8_t* mid_pages = (*mid)->data();
  uint8_t* small_pages = (*small)->data();
  pool.Release(std::move(*big));
  pool.Release(std::move(*mid));
  pool.Release(std::move(*small));

  // 20 MiB: 64 MiB is more than twice too big, 16 and 8 are too small.
  auto r1 = pool.Acquire(20 * kMiB);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(pool.GetStats().hits, 0u);
  EXPECT_EQ((*r1)->capacity(), 20 * kMiB);
  // 6 MiB: 16 MiB is more than 2x (> 12); 8 MiB fits.
  auto r2 = pool.Acquire(6 * kMiB);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ((*r2)->data(), small_pages);
  // 9 MiB: 16 MiB is the only fit.
  auto r3 = pool.Acquire(9 * kMiB);
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ((*r3)->data(), mid_pages);
  EXPECT_EQ(pool.GetStats().hits, 2u);
}

TEST(SegmentPoolTest, EvictsOldestBeyondBudget) {
  SegmentPool pool(10 * kMiB);
  auto a = pool.Acquire(4 * kMiB);
  auto b = pool.Acquire(4 * kMiB);
  auto c = pool.Acquire(4 * kMiB);
  auto huge = pool.Acquire(12 * kMiB);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && huge.ok());
  uint8_t* b_pages = (*b)->data();
  uint8_t* c_pages = (*c)->data();
  pool.Release(std::move(*a));
  pool.Release(std::move(*b));
  EXPECT_EQ(pool.GetStats().pooled_bytes, static_cast<int64_t>(8 * kMiB));
  pool.Release(std::move(*c));  // 12 MiB > 10: `a` (oldest) goes
  auto s = pool.GetStats();
  EXPECT_EQ(s.pooled_bytes, static_cast<int64_t>(8 * kMiB));
  EXPECT_EQ(s.pooled_segments, 2u);
  EXPECT_EQ(s.evictions, 1u);
  pool.Release(std::move(*huge));  // larger than the whole budget: dropped
  EXPECT_EQ(pool.GetStats().evictions, 2u);
  EXPECT_EQ(pool.GetStats().pooled_segments, 2u);

  auto r1 = pool.Acquire(4 * kMiB);
  auto r2 = pool.Acquire(4 * kMiB);
  ASSERT_TRUE(r1.ok() && r2.ok());
  std::set<uint8_t*> got = {(*r1)->data(), (*r2)->data()};
  EXPECT_EQ(got, (std::set<uint8_t*>{b_pages, c_pages}));
  EXPECT_EQ(pool.GetStats().hits, 2u);
}

TEST(SegmentPoolTest, ZeroBudgetDisablesPooling) {
  SegmentPool pool(0);
  auto a = pool.Acquire(100);
  ASSERT_TRUE(a.ok());
  pool.Release(std::move(*a));
  EXPECT_EQ(pool.GetStats().pooled_segments, 0u);
  EXPECT_EQ(pool.Acquire(0).status().code(), StatusCode::kInvalidArgument);
}

// The point of the flock protocol: a segment some other process still maps
// is not handed out again until that mapping is gone.
TEST(SegmentPoolTest, NoReuseWhileAnotherProcessMapsTheSegment) {
  SegmentPool pool(64 * kMiB);
  auto a = pool.Acquire(1 * kMiB);
  ASSERT_TRUE(a.ok()) << a.status();
  uint8_t* a_pages = (*a)->data();
  std::memset(a_pages, 1, 1 * kMiB);
  proto::ShmLocation loc = (*a)->Location(1 * kMiB);

  ChildProcess reader([loc](MessageChannel& ch) {
    auto m = ShmMapping::Open(loc);
    if (!m.ok()) return 11;
    if ((*m)->data()[1000] != 1) return 12;
    ch.Send({"M"});  // mapped
    auto go = ch.Receive(Deadline::After(60s));
    if (!go.ok()) return 13;
    bool unchanged = (*m)->data()[1000] == 1;
    m->reset();  // unmap + close: drops the shared lock
    ch.Send({unchanged ? "U" : "X"});
    auto bye = ch.Receive(Deadline::After(60s));
    return bye.ok() ? 0 : 14;
  });
  auto mapped = reader.channel().ReceiveOne(Soon());
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  ASSERT_EQ(*mapped, "M");

  pool.Release(std::move(*a));
  auto b = pool.Acquire(1 * kMiB);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE((*b)->data(), a_pages) << "reused a segment a reader still maps";
  EXPECT_EQ(pool.GetStats().hits, 0u);
  EXPECT_EQ(pool.GetStats().misses, 2u);

  ASSERT_TRUE(reader.channel().Send({"g"}));
  auto unmapped = reader.channel().ReceiveOne(Soon());
  ASSERT_TRUE(unmapped.ok()) << unmapped.status();
  EXPECT_EQ(*unmapped, "U") << "the reader saw its bytes change";

  // The reader process is still alive, but its mapping is gone: reuse.
  auto c = pool.Acquire(1 * kMiB);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->data(), a_pages);
  EXPECT_EQ(pool.GetStats().hits, 1u);

  ASSERT_TRUE(reader.channel().Send({"q"}));
  auto code = reader.Join(Soon());
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

TEST(SegmentPoolTest, ConcurrentAcquireRelease) {
  SegmentPool pool(32 * kMiB);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pool, &failures, t] {
      for (int i = 0; i < 200; ++i) {
        auto s = pool.Acquire((64 + 64 * ((i + t) % 4)) * kKiB);
        if (!s.ok()) {
          failures++;
          continue;
        }
        (*s)->data()[0] = static_cast<uint8_t>(i);
        pool.Release(std::move(*s));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto s = pool.GetStats();
  EXPECT_EQ(s.hits + s.misses, 800u);
  EXPECT_GT(s.hits, 0u);
  EXPECT_LE(s.pooled_bytes, static_cast<int64_t>(32 * kMiB));
}

}  // namespace
}  // namespace ferry::object
