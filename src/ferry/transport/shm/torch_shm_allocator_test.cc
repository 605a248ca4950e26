#include "ferry/transport/shm/torch_shm_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "ferry/transport/shm/shm_arena.h"

namespace ferry::transport {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(TorchShmAllocatorTest, LargeAllocationsComeFromTheArenaSmallOnesDoNot) {
  c10::Allocator* before = c10::GetCPUAllocator();
  c10::DataPtr early = before->allocate(4 * kMiB);  // made before the install
  ASSERT_TRUE(InstallTorchShmAllocator());
  c10::Allocator* alloc = c10::GetCPUAllocator();
  EXPECT_NE(alloc, before);
  EXPECT_TRUE(InstallTorchShmAllocator()) << "idempotent";
  EXPECT_EQ(c10::GetCPUAllocator(), alloc);

  ShmArena& arena = ShmArena::Global();
  const ShmArena::Stats s0 = arena.GetStats();
  {
    c10::DataPtr big = alloc->allocate(TorchShmMinBytesFromEnv());
    ASSERT_TRUE(big);
    std::memset(big.get(), 1, TorchShmMinBytesFromEnv());
    auto block = arena.Find(static_cast<uint8_t*>(big.get()) + 100);
    ASSERT_TRUE(block.has_value());
    EXPECT_EQ(block->base, big.get());
    EXPECT_EQ(big.device().type(), c10::DeviceType::CPU);

    c10::DataPtr small = alloc->allocate(TorchShmMinBytesFromEnv() - 1);
    ASSERT_TRUE(small);
    EXPECT_FALSE(arena.Find(small.get()).has_value());
    c10::DataPtr tiny = alloc->allocate(16);
    EXPECT_FALSE(arena.Find(tiny.get()).has_value());
    EXPECT_EQ(arena.GetStats().live_blocks, s0.live_blocks + 1);
  }
  // The DataPtrs' deleters returned the block to the arena's pool.
  const ShmArena::Stats s1 = arena.GetStats();
  EXPECT_EQ(s1.live_blocks, s0.live_blocks);
  EXPECT_EQ(s1.pooled_blocks, s0.pooled_blocks + 1);
  // Memory from before the install keeps its own deleter.
  EXPECT_FALSE(arena.Find(early.get()).has_value());
  early.clear();
}

TEST(TorchShmAllocatorTest, RawAllocateAndDeallocateBothKinds) {
  ASSERT_TRUE(InstallTorchShmAllocator());
  c10::Allocator* alloc = c10::GetCPUAllocator();
  ASSERT_NE(alloc->raw_deleter(), nullptr);
  void* big = alloc->raw_allocate(8 * kMiB);
  void* small = alloc->raw_allocate(1000);
  ASSERT_NE(big, nullptr);
  ASSERT_NE(small, nullptr);
  EXPECT_TRUE(ShmArena::Global().Find(big).has_value());
  EXPECT_FALSE(ShmArena::Global().Find(small).has_value());
  const uint64_t live = ShmArena::Global().GetStats().live_blocks;
  alloc->raw_deallocate(big);
  alloc->raw_deallocate(small);
  EXPECT_EQ(ShmArena::Global().GetStats().live_blocks, live - 1);
}

TEST(TorchShmAllocatorTest, ConcurrentInstallAndUse) {
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      if (!InstallTorchShmAllocator()) ++bad;
      for (int i = 0; i < 50; ++i) {
        c10::DataPtr p = c10::GetCPUAllocator()->allocate((i % 2) ? 2 * kMiB : 512);
        if (!p) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace ferry::transport
