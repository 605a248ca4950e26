#include "ferry/transport/shm/shm_arena.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ferry/testing/child_process.h"
#include "ferry/testing/deadline.h"

namespace ferry::transport {
namespace {

using ferry::testing::ChildProcess;
using ferry::testing::MessageChannel;
using ferry::testing::Soon;

constexpr uint64_t kMiB = uint64_t{1} << 20;

ShmArena::Options Opts(uint64_t pool_bytes, uint64_t max_fds = 1000) {
  ShmArena::Options o;
  o.max_pooled_bytes = pool_bytes;
  o.max_fds = max_fds;
  return o;
}

bool FdOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

std::string FdTarget(int fd) {
  char buf[256];
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = readlink(path.c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

TEST(ShmArenaTest, SizeClassesArePagesWithBoundedWaste) {
  EXPECT_EQ(ShmArena::SizeClass(0), 4096u);
  EXPECT_EQ(ShmArena::SizeClass(1), 4096u);
  EXPECT_EQ(ShmArena::SizeClass(4097), 8192u);
  EXPECT_EQ(ShmArena::SizeClass(kMiB), kMiB);
  EXPECT_EQ(ShmArena::SizeClass(kMiB + 1), kMiB + kMiB / 4);
  uint64_t previous = 0;
  for (uint64_t n = 1; n < (uint64_t{1} << 34); n = n * 3 / 2 + 7) {
    const uint64_t c = ShmArena::SizeClass(n);
    EXPECT_GE(c, n);
    EXPECT_EQ(c % ShmArena::kPageBytes, 0u) << n;
    if (n > 16384) {
      EXPECT_LE(c - n, n / 4) << n;
    }
    EXPECT_GE(c, previous);
    previous = c;
  }
}

TEST(ShmArenaTest, BlocksAreNamedMemfdsMappedShared) {
  ShmArena arena(Opts(kMiB * 16));
  auto p = arena.Allocate(3 * kMiB);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(*p) % ShmArena::kPageBytes, 0u);
  auto block = arena.Find(*p);
  ASSERT_TRUE(block.has_value());
  EXPECT_EQ(FdTarget(block->fd).rfind("/memfd:ferry-arena", 0), 0u) << FdTarget(block->fd);
  EXPECT_EQ(fcntl(block->fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  struct stat st;
  ASSERT_EQ(fstat(block->fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_ino), block->inode);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), block->capacity);
  // Writes through our mapping are in the memfd (MAP_SHARED).
  std::memset(*p, 0x5a, 3 * kMiB);
  uint8_t byte = 0;
  ASSERT_EQ(pread(block->fd, &byte, 1, 3 * kMiB - 1), 1);
  EXPECT_EQ(byte, 0x5a);
  arena.Free(*p);
}

TEST(ShmArenaTest, FindCoversEveryByteOfLiveBlocksOnly) {
  ShmArena arena(Opts(kMiB * 16));
  auto a = arena.Allocate(kMiB);
  auto b = arena.Allocate(5000);
  ASSERT_TRUE(a.ok() && b.ok());
  uint8_t* pa = static_cast<uint8_t*>(*a);
  auto first = arena.Find(pa);
  auto inside = arena.Find(pa + 12345);
  auto last = arena.Find(pa + kMiB - 1);
  ASSERT_TRUE(first && inside && last);
  EXPECT_EQ(first->base, pa);
  EXPECT_EQ(inside->base, pa);
  EXPECT_EQ(last->base, pa);
  EXPECT_EQ(first->capacity, kMiB);
  EXPECT_EQ(inside->fd, first->fd);
  auto past = arena.Find(pa + kMiB);
  EXPECT_TRUE(!past.has_value() || past->base != pa);
  auto other = arena.Find(static_cast<uint8_t*>(*b) + 4999);
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->base, *b);
  EXPECT_NE(other->inode, first->inode);
  int on_stack = 0;
  EXPECT_FALSE(arena.Find(&on_stack).has_value());
  EXPECT_FALSE(arena.Find(nullptr).has_value());
  arena.Free(pa);
  EXPECT_FALSE(arena.Find(pa).has_value()) << "a pooled block is not live";
  EXPECT_FALSE(arena.Find(pa + 100).has_value());
  arena.Free(*b);
}

TEST(ShmArenaTest, FreedBlocksAreReusedFromThePoolStillFaultedIn) {
  ShmArena arena(Opts(kMiB * 16));
  auto p = arena.Allocate(2 * kMiB);
  ASSERT_TRUE(p.ok());
  std::memset(*p, 7, 2 * kMiB);
  const uint64_t inode = arena.Find(*p)->inode;
  arena.Free(*p);
  ShmArena::Stats s = arena.GetStats();
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.pooled_blocks, 1u);
  EXPECT_EQ(s.pooled_bytes, 2 * kMiB);
  EXPECT_EQ(s.misses, 1u);

  // Same class (2 MiB - 100 rounds to 2 MiB): the same block comes back.
  auto q = arena.Allocate(2 * kMiB - 100);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, *p);
  EXPECT_EQ(arena.Find(*q)->inode, inode);
  EXPECT_EQ(static_cast<uint8_t*>(*q)[2 * kMiB - 1], 7) << "pooled memory keeps its pages";
  s = arena.GetStats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.pooled_blocks, 0u);
  EXPECT_EQ(s.live_bytes, 2 * kMiB);

  // Another class is a fresh memfd.
  auto r = arena.Allocate(kMiB);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(arena.GetStats().misses, 2u);
  arena.Free(*q);
  arena.Free(*r);
}

TEST(ShmArenaTest, PoolIsBoundedBeyondItBlocksAreUnmappedAndClosed) {
  ShmArena arena(Opts(3 * kMiB));
  std::vector<void*> blocks;
  std::vector<int> fds;
  for (int i = 0; i < 4; ++i) {
    auto p = arena.Allocate(kMiB);
    ASSERT_TRUE(p.ok());
    blocks.push_back(*p);
    fds.push_back(arena.Find(*p)->fd);
  }
  for (void* p : blocks) arena.Free(p);
  ShmArena::Stats s = arena.GetStats();
  EXPECT_EQ(s.pooled_blocks, 3u);
  EXPECT_EQ(s.pooled_bytes, 3 * kMiB);
  EXPECT_EQ(s.released_blocks, 1u);
  EXPECT_FALSE(FdOpen(fds[3])) << "the block past the bound was closed";
  EXPECT_TRUE(FdOpen(fds[0]));

  arena.Trim();
  s = arena.GetStats();
  EXPECT_EQ(s.pooled_blocks, 0u);
  EXPECT_EQ(s.released_blocks, 4u);
  EXPECT_FALSE(FdOpen(fds[0]));
}

TEST(ShmArenaTest, DescriptorBudgetClosesPooledBlocksThenRefuses) {
  ShmArena arena(Opts(kMiB * 64, /*max_fds=*/3));
  auto a = arena.Allocate(kMiB);
  auto b = arena.Allocate(kMiB);
  auto c = arena.Allocate(2 * kMiB);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  auto d = arena.Allocate(4 * kMiB);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kResourceExhausted) << d.status();
  EXPECT_NE(d.status().message().find("FERRY_SHM_ARENA_MAX_FDS"), std::string::npos);

  arena.Free(*c);  // pooled: still holds its descriptor
  auto e = arena.Allocate(4 * kMiB);
  ASSERT_TRUE(e.ok()) << e.status();
  ShmArena::Stats s = arena.GetStats();
  EXPECT_EQ(s.pooled_blocks, 0u) << "the pooled 2 MiB block made room";
  EXPECT_EQ(s.released_blocks, 1u);
  EXPECT_EQ(s.live_blocks, 3u);
  for (void* p : {*a, *b, *e}) arena.Free(p);
}

TEST(ShmArenaTest, ConcurrentAllocateFindFree) {
  ShmArena arena(Opts(kMiB * 8));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const uint64_t n = 4096 * (1 + (i * 7 + t) % 64);
        auto p = arena.Allocate(n);
        if (!p.ok()) {
          ++failures;
          continue;
        }
        static_cast<uint8_t*>(*p)[n - 1] = static_cast<uint8_t>(t);
        auto block = arena.Find(static_cast<uint8_t*>(*p) + n - 1);
        if (!block || block->base != *p) ++failures;
        arena.Free(*p);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  ShmArena::Stats s = arena.GetStats();
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_LE(s.pooled_bytes, kMiB * 8);
  EXPECT_EQ(s.hits + s.misses, 800u);
}

TEST(ShmArenaTest, ForkedChildNeverReusesTheParentsBlocks) {
  ShmArena arena(Opts(kMiB * 16));
  auto live = arena.Allocate(kMiB);
  auto pooled = arena.Allocate(kMiB);
  ASSERT_TRUE(live.ok() && pooled.ok());
  std::memset(*live, 1, kMiB);
  std::memset(*pooled, 2, kMiB);
  const uint64_t pooled_inode = arena.Find(*pooled)->inode;
  const uint64_t live_inode = arena.Find(*live)->inode;
  arena.Free(*pooled);

  ChildProcess child([&](MessageChannel&) {
    if (arena.GetStats().pooled_blocks != 0) return 1;  // the parent's pool is not the child's
    auto fresh = arena.Allocate(kMiB);
    if (!fresh.ok() || arena.Find(*fresh)->inode == pooled_inode) return 2;
    std::memset(*fresh, 3, kMiB);
    if (!arena.Find(*live)) return 3;  // inherited blocks stay usable
    arena.Free(*live);                 // only the child's view goes
    if (arena.GetStats().pooled_blocks != 0) return 4;
    auto again = arena.Allocate(kMiB);
    if (!again.ok() || arena.Find(*again)->inode == live_inode)
      return 5;  // a new memfd (maybe at the same address)
    return 0;
  });
  auto code = child.Join(Soon());
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  // The parent's blocks are untouched.
  EXPECT_EQ(static_cast<uint8_t*>(*live)[kMiB - 1], 1);
  EXPECT_EQ(arena.GetStats().pooled_blocks, 1u);
  auto reused = arena.Allocate(kMiB);
  ASSERT_TRUE(reused.ok());
  EXPECT_EQ(*reused, *pooled);
  EXPECT_EQ(static_cast<uint8_t*>(*reused)[0], 2);
  arena.Free(*reused);
  arena.Free(*live);
}

}  // namespace
}  // namespace ferry::transport
