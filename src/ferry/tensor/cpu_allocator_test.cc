#include "ferry/tensor/cpu_allocator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace ferry::tensor {
namespace {

bool Aligned(void* p, uint64_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

TEST(CpuAllocatorTest, SizeClasses) {
  EXPECT_EQ(CpuAllocator::SizeClass(0), 64u);
  EXPECT_EQ(CpuAllocator::SizeClass(1), 64u);
  EXPECT_EQ(CpuAllocator::SizeClass(65), 128u);
  EXPECT_EQ(CpuAllocator::SizeClass(4096), 4096u);
  EXPECT_EQ(CpuAllocator::SizeClass(4097), 5120u);
  EXPECT_EQ(CpuAllocator::SizeClass(8192), 8192u);
  EXPECT_EQ(CpuAllocator::SizeClass(3u << 20), 3u << 20);
  for (uint64_t n : {1ull, 100ull, 5000ull, 123456ull, 3000001ull, 1ull << 33}) {
    const uint64_t c = CpuAllocator::SizeClass(n);
    EXPECT_GE(c, n);
    EXPECT_LE(c, n < 4096 ? n + 64 : n + n / 4) << n;
    EXPECT_EQ(c % 64, 0u);
  }
}

TEST(CpuAllocatorTest, ReusesFreedBlocksOfTheSameClass) {
  CpuAllocator alloc(64 << 20);
  void* a = nullptr;
  auto block = alloc.Allocate(10000, &a);
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_TRUE(Aligned(a, 64));
  std::memset(a, 1, 10000);
  *block = nullptr;  // back to the pool
  EXPECT_EQ(alloc.GetStats().pooled_bytes, CpuAllocator::SizeClass(10000));
  EXPECT_EQ(alloc.GetStats().pooled_blocks, 1u);

  void* b = nullptr;
  auto again = alloc.Allocate(9999, &b);  // same class
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(b, a);
  CpuAllocator::Stats s = alloc.GetStats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.pooled_bytes, 0u);

  void* c = nullptr;
  auto other = alloc.Allocate(100, &c);  // a different class: a miss
  ASSERT_TRUE(other.ok());
  EXPECT_NE(c, a);
  EXPECT_EQ(alloc.GetStats().misses, 2u);
}

TEST(CpuAllocatorTest, LargeBlocksAreHugePageAligned) {
  CpuAllocator alloc(64 << 20);
  void* a = nullptr;
  auto block = alloc.Allocate(5 << 20, &a);
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_TRUE(Aligned(a, CpuAllocator::kHugePageBytes));
  std::memset(a, 3, 5 << 20);
  *block = nullptr;
  void* b = nullptr;
  auto again = alloc.Allocate((5 << 20) - 100, &b);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(b, a);
  EXPECT_EQ(static_cast<unsigned char*>(b)[12345], 3);  // same, still-mapped memory
}

TEST(CpuAllocatorTest, PoolIsBounded) {
  const uint64_t block_size = CpuAllocator::SizeClass(1 << 16);
  CpuAllocator alloc(2 * block_size);
  std::vector<std::shared_ptr<void>> blocks;
  for (int i = 0; i < 4; ++i) {
    void* p = nullptr;
    auto b = alloc.Allocate(1 << 16, &p);
    ASSERT_TRUE(b.ok());
    blocks.push_back(*b);
  }
  blocks.clear();
  CpuAllocator::Stats s = alloc.GetStats();
  EXPECT_EQ(s.pooled_bytes, 2 * block_size);
  EXPECT_EQ(s.pooled_blocks, 2u);
  alloc.Trim();
  EXPECT_EQ(alloc.GetStats().pooled_bytes, 0u);
}

TEST(CpuAllocatorTest, WarmPrefaultsIntoThePool) {
  CpuAllocator alloc(64 << 20);
  ASSERT_TRUE(alloc.Warm(1 << 20, 2).ok());
  EXPECT_EQ(alloc.GetStats().pooled_blocks, 2u);
  void* p = nullptr;
  auto b = alloc.Allocate(1 << 20, &p);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(alloc.GetStats().hits, 1u);
}

TEST(CpuAllocatorTest, BlocksOutliveTheAllocator) {
  std::shared_ptr<void> small, large;
  void* s = nullptr;
  void* l = nullptr;
  {
    CpuAllocator alloc(64 << 20);
    small = *alloc.Allocate(1000, &s);
    large = *alloc.Allocate(4 << 20, &l);
  }
  // Still valid memory after the allocator died (ASan checks the accesses);
  // releasing it frees it instead of pooling.
  std::memset(s, 5, 1000);
  std::memset(l, 5, 4 << 20);
  small.reset();
  large.reset();
}

TEST(CpuAllocatorTest, ConcurrentAllocateAndRelease) {
  CpuAllocator alloc(8 << 20);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&alloc, t] {
      for (int i = 0; i < 500; ++i) {
        void* p = nullptr;
        const uint64_t n = 64 + ((i * 7 + t) % 5) * 3000;
        auto b = alloc.Allocate(n, &p);
        ASSERT_TRUE(b.ok());
        std::memset(p, t, n);
      }
    });
  }
  for (auto& th : threads) th.join();
  CpuAllocator::Stats s = alloc.GetStats();
  EXPECT_EQ(s.hits + s.misses, 2000u);
  EXPECT_GT(s.hits, 0u);
}

TEST(CpuAllocatorTest, DefaultBoundComesFromTheEnvironment) {
  ::setenv("FERRY_RECV_POOL_BYTES", "12345", 1);
  EXPECT_EQ(CpuAllocator().max_pooled_bytes(), 12345u);
  ::unsetenv("FERRY_RECV_POOL_BYTES");
  EXPECT_EQ(CpuAllocator().max_pooled_bytes(), CpuAllocator::kDefaultMaxPooledBytes);
}

TEST(CpuAllocatorTest, RejectsNullOutAndAbsurdSizes) {
  CpuAllocator alloc;
  EXPECT_EQ(alloc.Allocate(10, nullptr).status().code(), StatusCode::kInvalidArgument);
  void* p = nullptr;
  EXPECT_EQ(alloc.Allocate(uint64_t{1} << 62, &p).status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace ferry::tensor
