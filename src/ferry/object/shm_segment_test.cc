// ShmSegment and ShmMapping: cross-process reads through /proc/<pid>/fd,
// copy-on-write privacy, reader locks, and failures.
#include "ferry/object/shm_segment.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

#include "ferry/object/shm_mapping.h"
#include "ferry/testing/child_process.h"
#include "ferry/testing/deadline.h"
#include "ferry/testing/pattern.h"

namespace ferry::object {
namespace {

using testing::ChildProcess;
using testing::FillPattern;
using testing::FirstMismatch;
using testing::MessageChannel;
using testing::Soon;

std::string FdTarget(int fd) {
  char buf[256];
  ssize_t n = readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

TEST(ShmSegmentTest, CreateWriteLocation) {
  auto seg = ShmSegment::Create(1 << 20);
  ASSERT_TRUE(seg.ok()) << seg.status();
  EXPECT_EQ((*seg)->capacity(), 1u << 20);
  EXPECT_GE((*seg)->fd(), 0);
  EXPECT_EQ((*seg)->data()[12345], 0);  // zero-filled
  std::memset((*seg)->data(), 0xab, 1 << 20);
  proto::ShmLocation loc = (*seg)->Location(1000);
  EXPECT_EQ(loc.pid(), getpid());
  EXPECT_EQ(loc.fd(), (*seg)->fd());
  EXPECT_EQ(loc.size(), 1000u);
  // A memfd: anonymous, no name in /dev/shm or any other file system.
  EXPECT_EQ(FdTarget((*seg)->fd()).rfind("/memfd:ferry-segment", 0), 0u) << FdTarget((*seg)->fd());
  EXPECT_NE(fcntl((*seg)->fd(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_TRUE((*seg)->NoReaders());
  EXPECT_EQ(ShmSegment::Create(0).status().code(), StatusCode::kInvalidArgument);
}

TEST(ShmSegmentTest, ForkedChildReadsThroughProcFd) {
  constexpr uint64_t kSize = 3 * 1024 * 1024 + 17;
  auto seg = ShmSegment::Create(4 << 20);
  ASSERT_TRUE(seg.ok()) << seg.status();
  FillPattern((*seg)->data(), kSize, /*seed=*/1);
  proto::ShmLocation loc = (*seg)->Location(kSize);

  ChildProcess child([loc](MessageChannel& ch) {
    // The child opens /proc/<parent>/fd/<fd>, not its inherited copy.
    if (loc.pid() == getpid()) return 10;
    auto m = ShmMapping::Open(loc);
    if (!m.ok()) return 11;
    if ((*m)->size() != kSize) return 12;
    if (FirstMismatch((*m)->data(), kSize, /*seed=*/1) != -1) return 13;
    return 0;
  });
  auto code = child.Join(Soon());
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

TEST(ShmSegmentTest, ReaderWritesAreCopyOnWrite) {
  auto seg = ShmSegment::Create(64 << 10);
  ASSERT_TRUE(seg.ok()) << seg.status();
  uint8_t* producer = (*seg)->data();
  std::memset(producer, 7, 64 << 10);
  proto::ShmLocation loc = (*seg)->Location(64 << 10);

  // Same process (/proc/self/fd).
  auto m1 = ShmMapping::Open(loc);
  ASSERT_TRUE(m1.ok()) << m1.status();
  auto m2 = ShmMapping::Open(loc);
  ASSERT_TRUE(m2.ok()) << m2.status();
  (*m1)->data()[100] = 42;
  (*m1)->data()[40000] = 43;
  EXPECT_EQ((*m1)->data()[100], 42);
  EXPECT_EQ(producer[100], 7) << "a reader's write reached the producer";
  EXPECT_EQ(producer[40000], 7);
  EXPECT_EQ((*m2)->data()[100], 7) << "a reader's write reached another reader";

  // Another process writing its mapping leaves ours and the producer's alone.
  ChildProcess child([loc](MessageChannel&) {
    auto m = ShmMapping::Open(loc);
    if (!m.ok()) return 11;
    std::memset((*m)->data(), 99, (*m)->size());
    return (*m)->data()[5000] == 99 ? 0 : 12;
  });
  auto code = child.Join(Soon());
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(producer[5000], 7);
  EXPECT_EQ((*m2)->data()[5000], 7);
}

TEST(ShmSegmentTest, MappingHoldsSharedLockUntilDestroyed) {
  auto seg = ShmSegment::Create(64 << 10);
  ASSERT_TRUE(seg.ok()) << seg.status();
  proto::ShmLocation loc = (*seg)->Location(4096);
  EXPECT_TRUE((*seg)->NoReaders());
  {
    auto m = ShmMapping::Open(loc);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_FALSE((*seg)->NoReaders());
    auto m2 = ShmMapping::Open(loc);
    ASSERT_TRUE(m2.ok()) << m2.status();
    m->reset();
    EXPECT_FALSE((*seg)->NoReaders()) << "the second reader still holds its lock";
  }
  EXPECT_TRUE((*seg)->NoReaders());
}

TEST(ShmSegmentTest, EmptyLocationMapsNothing) {
  auto seg = ShmSegment::Create(4096);
  ASSERT_TRUE(seg.ok()) << seg.status();
  auto m = ShmMapping::Open((*seg)->Location(0));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->size(), 0u);
}

TEST(ShmSegmentTest, ProducerGoneIsDataLoss) {
  ChildProcess child([](MessageChannel& ch) {
    auto seg = ShmSegment::Create(4096);
    if (!seg.ok()) return 11;
    std::string wire;
    (*seg)->Location(4096).SerializeToString(&wire);
    return ch.Send({wire}) ? 0 : 12;  // exits, taking the memfd with it
  });
  auto wire = child.channel().ReceiveOne(Soon());
  ASSERT_TRUE(wire.ok()) << wire.status();
  ASSERT_EQ(*child.Join(Soon()), 0);
  proto::ShmLocation loc;
  ASSERT_TRUE(loc.ParseFromString(*wire));
  auto m = ShmMapping::Open(loc);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss) << m.status();
  EXPECT_NE(m.status().message().find("exited"), std::string::npos) << m.status();
}

TEST(ShmSegmentTest, RejectsDescriptorsThatAreNotSegments) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  proto::ShmLocation loc;
  loc.set_pid(getpid());
  loc.set_fd(fd);
  loc.set_size(0);
  auto m = ShmMapping::Open(loc);
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << m.status();
  close(fd);

  loc.set_fd(-1);
  EXPECT_EQ(ShmMapping::Open(loc).status().code(), StatusCode::kInvalidArgument);
  loc.set_pid(0);
  loc.set_fd(3);
  EXPECT_EQ(ShmMapping::Open(loc).status().code(), StatusCode::kInvalidArgument);
}

TEST(ShmSegmentTest, RejectsSizeLargerThanSegment) {
  auto seg = ShmSegment::Create(64 << 10);
  ASSERT_TRUE(seg.ok()) << seg.status();
  proto::ShmLocation loc = (*seg)->Location(64 << 10);
  loc.set_size(uint64_t{1} << 40);
  auto m = ShmMapping::Open(loc);
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss) << m.status();
  EXPECT_TRUE((*seg)->NoReaders()) << "a failed open must not keep a lock";
}

}  // namespace
}  // namespace ferry::object
