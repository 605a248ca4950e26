// What only the UCX backend does: its two data paths, its registration
// cache, the white-box checks of its endpoint. The behaviour every one-sided
// transport shares (pulls from other processes, bad input, deadlines,
// producers that die) is in ../one_sided_conformance_test.cc, which runs it
// on both of nixl's paths.
#include "ferry/transport/ucx/ucx_transport.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "ferry/testing/pattern.h"
#include "ferry/transport/test_util.h"

namespace ferry::transport {
namespace {

#if defined(__SANITIZE_THREAD__)
// Under ThreadSanitizer, UCX's hook on madvise (run by every exiting thread)
// crashes inside the sanitizer's runtime unless UCX_MEM_EVENTS=no, which UCX
// reads when the library loads: set it and run this binary again.
const bool kReexecutedForTsan = [] {
  if (std::getenv("UCX_MEM_EVENTS") != nullptr) return false;
  std::ifstream in("/proc/self/cmdline");
  std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<char*> argv;
  for (size_t i = 0; i < cmdline.size(); i += std::strlen(&cmdline[i]) + 1)
    argv.push_back(&cmdline[i]);
  argv.push_back(nullptr);
  setenv("UCX_MEM_EVENTS", "no", 1);
  execv("/proc/self/exe", argv.data());
  return false;  // exec failed: run as we are
}();
#endif

using ferry::testing::Pattern;
using std::chrono::seconds;
using testing::View;

// The two data paths of a Pull.
enum class Path { kCma, kUcp };

std::unique_ptr<UcxTransport> MakeTransport(Path path = Path::kCma) {
  UcxOptions options = UcxOptions::FromEnv();
  options.same_host_cma = path == Path::kCma;
  auto t = UcxTransport::Create(options);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

// Pulls `src` (exported by another transport as `endpoint`, `descriptor`)
// with `t` and checks the bytes.
void ExpectPulls(UcxTransport& t, const std::string& endpoint, const std::string& descriptor,
                 const std::vector<uint8_t>& src) {
  std::vector<uint8_t> dst(src.size(), 0);
  PullItem item{endpoint, descriptor, View(dst)};
  Status s = t.Pull({&item, 1}, Deadline::After(seconds(60)));
  ASSERT_TRUE(s.ok()) << "size " << src.size() << ": " << s;
  EXPECT_TRUE(dst == src) << "size " << src.size() << ": bytes differ";
}

class UcxPullTest : public ::testing::TestWithParam<Path> {
 protected:
  Path path() const { return GetParam(); }
  std::unique_ptr<UcxTransport> Make() { return MakeTransport(path()); }
};

INSTANTIATE_TEST_SUITE_P(Paths, UcxPullTest, ::testing::Values(Path::kCma, Path::kUcp),
                         [](const ::testing::TestParamInfo<Path>& info) {
                           return info.param == Path::kCma ? "Cma" : "UcpGet";
                         });

TEST(UcxTransportTest, HasAtLeastOneLane) {
  auto t = MakeTransport();
  ASSERT_NE(t, nullptr);
  EXPECT_GE(t->stats().lanes, 1);
}

// The path asked for is the one used, and its connection is cached.
TEST_P(UcxPullTest, PullUsesThePathAskedFor) {
  auto producer = MakeTransport();
  auto t = Make();
  ASSERT_NE(producer, nullptr);
  ASSERT_NE(t, nullptr);
  std::vector<std::vector<uint8_t>> src = {Pattern(4096, 1), Pattern(1 << 20, 2)};
  auto e = producer->Export({View(src[0]), View(src[1])});
  ASSERT_TRUE(e.ok()) << e.status();
  for (int round = 0; round < 2; ++round) {
    for (size_t i = 0; i < src.size(); ++i) ExpectPulls(*t, e->endpoint, e->descriptors[i], src[i]);
  }
  const auto stats = t->stats();
  if (path() == Path::kCma) {
    EXPECT_EQ(stats.cma_peers, 1u);
    EXPECT_EQ(stats.cached_endpoints, 0u);
  } else {
    EXPECT_EQ(stats.cma_peers, 0u);
    EXPECT_GE(stats.cached_endpoints, 1u);
    EXPECT_LE(stats.cached_endpoints, static_cast<size_t>(stats.lanes))
        << "one endpoint per lane at most";
  }
  producer->Release({View(src[0]), View(src[1])});
}

// The endpoint is binary with a fixed layout: one byte short is refused
// before anything connects.
TEST_P(UcxPullTest, TruncatedEndpointIsInvalidArgument) {
  auto producer = MakeTransport();
  auto consumer = Make();
  ASSERT_NE(producer, nullptr);
  ASSERT_NE(consumer, nullptr);
  std::vector<uint8_t> src(4096, 5), dst(4096);
  auto e = producer->Export({View(src)});
  ASSERT_TRUE(e.ok()) << e.status();
  const std::string short_endpoint = e->endpoint.substr(0, e->endpoint.size() - 1);
  PullItem item{short_endpoint, e->descriptors[0], View(dst)};
  const auto start = Clock::now();
  Status s = consumer->Pull({&item, 1}, Deadline::After(seconds(30)));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  EXPECT_LT(Clock::now() - start, seconds(5));
  EXPECT_EQ(consumer->stats().cached_endpoints + consumer->stats().cma_peers, 0u);
  producer->Release({View(src)});
}

TEST(UcxTransportTest, RegistrationsAreCachedAndCounted) {
  auto t = MakeTransport();
  ASSERT_NE(t, nullptr);
  std::vector<uint8_t> a(1 << 20, 1), b(4096, 2);
  auto first = t->Export({View(a)});
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = t->Export({View(a), View(b)});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(t->stats().registered_regions, 2u) << "a is mapped once";
  EXPECT_EQ(first->descriptors[0], second->descriptors[0]);
  EXPECT_EQ(first->endpoint, second->endpoint);

  t->Release({View(a)});
  EXPECT_EQ(t->stats().registered_regions, 2u) << "a is still exported once";
  t->Release({View(a), View(b)});
  EXPECT_EQ(t->stats().registered_regions, 0u);
  t->Release({View(a)});  // never exported any more: ignored
  EXPECT_EQ(t->stats().registered_regions, 0u);
}

TEST(UcxTransportTest, ZeroByteBuffersRegisterNothing) {
  auto t = MakeTransport();
  ASSERT_NE(t, nullptr);
  auto e = t->Export({{nullptr, 0}});
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->descriptors.size(), 1u);
  EXPECT_EQ(t->stats().registered_regions, 0u);
}

TEST(UcxTransportTest, FailedExportKeepsNoRegistration) {
  auto t = MakeTransport();
  ASSERT_NE(t, nullptr);
  std::vector<uint8_t> ok(4096);
  ASSERT_FALSE(t->Export({View(ok), {nullptr, 16}}).ok());
  EXPECT_EQ(t->stats().registered_regions, 0u) << "the good buffer's registration was undone";
}

// The CMA path names a producer by pid and start time; a process with the
// producer's pid but another start time (a recycled pid) is never read.
TEST(UcxTransportTest, CmaRefusesAProcessThatMerelyHasTheProducersPid) {
  auto producer = MakeTransport();
  auto t = MakeTransport(Path::kCma);
  ASSERT_NE(producer, nullptr);
  ASSERT_NE(t, nullptr);
  std::vector<uint8_t> src = Pattern(4096, 1);
  auto e = producer->Export({View(src)});
  ASSERT_TRUE(e.ok()) << e.status();
  // White box: the endpoint starts magic(4) address_len(4) pid(8)
  // start_time(8); shift the start time.
  std::string endpoint = e->endpoint;
  ASSERT_GT(endpoint.size(), 24u);
  endpoint[16] ^= 0x01;
  std::vector<uint8_t> dst(4096, 0);
  PullItem item{endpoint, e->descriptors[0], View(dst)};
  Status s = t->Pull({&item, 1}, Deadline::After(seconds(10)));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s;
  EXPECT_EQ(dst, std::vector<uint8_t>(4096, 0));
  ExpectPulls(*t, e->endpoint, e->descriptors[0], src);  // the genuine endpoint still works
}

}  // namespace
}  // namespace ferry::transport
