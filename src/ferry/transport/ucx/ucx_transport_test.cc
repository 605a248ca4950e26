// Tests of the UCX backend with real UCX and real processes: a producer is
// this same binary re-executed (fork + exec, so no UCX state crosses the
// fork) running UcxTransportChild.DISABLED_Producer, which exports patterned
// buffers, sends the endpoint and descriptors over a socketpair, and stays
// alive until the parent says 'q' or closes its end.
#include "ferry/transport/ucx/ucx_transport.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "ferry/transport/test_util.h"

extern char** environ;

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
  for (size_t i = 0; i < cmdline.size(); i += std::strlen(&cmdline[i]) + 1) argv.push_back(&cmdline[i]);
  argv.push_back(nullptr);
  setenv("UCX_MEM_EVENTS", "no", 1);
  execv("/proc/self/exe", argv.data());
  return false;  // exec failed: run as we are
}();
#endif

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::Pattern;
using testing::View;

constexpr char kSpecEnv[] = "FERRY_UCX_TEST_PRODUCER_SPEC";
constexpr int kChildFd = 3;  // the child's end of the socketpair, after exec

// One exported buffer of a producer: `size` bytes of Pattern(size, seed).
struct BufferSpec {
  uint64_t size;
  uint64_t seed;
};

std::string EncodeSpec(const std::vector<BufferSpec>& specs) {
  std::ostringstream out;
  for (const auto& s : specs) out << s.size << ":" << s.seed << ",";
  return out.str();
}

std::vector<BufferSpec> DecodeSpec(const std::string& text) {
  std::vector<BufferSpec> specs;
  std::istringstream in(text);
  std::string entry;
  while (std::getline(in, entry, ',')) {
    const auto colon = entry.find(':');
    specs.push_back({std::stoull(entry.substr(0, colon)), std::stoull(entry.substr(colon + 1))});
  }
  return specs;
}

// Length-prefixed strings over a stream socket.
void PutString(std::string& out, std::string_view s) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  out.append(reinterpret_cast<const char*>(&n), sizeof(n));
  out.append(s);
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

Status ReadAll(int fd, void* dst, size_t n, Deadline deadline) {
  char* p = static_cast<char*>(dst);
  while (n > 0) {
    struct pollfd pfd{fd, POLLIN, 0};
    const auto wait = std::chrono::ceil<milliseconds>(deadline.Remaining()).count();
    if (poll(&pfd, 1, static_cast<int>(std::min<int64_t>(wait, 60'000))) == 0) {
      if (deadline.Expired()) return Status::DeadlineExceeded("test: producer did not answer in time");
      continue;
    }
    ssize_t got = read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return Status::Unavailable("test: producer closed its socket");
    p += got;
    n -= static_cast<size_t>(got);
  }
  return Status::Ok();
}

StatusOr<std::string> ReadString(int fd, Deadline deadline) {
  uint32_t n = 0;
  FERRY_RETURN_IF_ERROR(ReadAll(fd, &n, sizeof(n), deadline));
  std::string s(n, '\0');
  FERRY_RETURN_IF_ERROR(ReadAll(fd, s.data(), n, deadline));
  return s;
}

// Waits for process `pid` to exit, reaps it and returns its wait status;
// SIGKILLs it first if it has not exited by `deadline`.
int ReapChild(pid_t pid, Deadline deadline) {
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    struct pollfd pfd{pidfd, POLLIN, 0};
    const auto wait = std::chrono::ceil<milliseconds>(deadline.Remaining()).count();
    if (poll(&pfd, 1, static_cast<int>(std::min<int64_t>(wait, 600'000))) == 0) kill(pid, SIGKILL);
    close(pidfd);
  } else {
    kill(pid, SIGKILL);  // cannot wait on it with a bound: make sure it ends
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  return wstatus;
}

// A producer process; the destructor tells it to exit and reaps it.
class Producer {
 public:
  static std::unique_ptr<Producer> Start(const std::vector<BufferSpec>& specs) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return nullptr;
    // Everything exec needs is built before fork: only async-signal-safe
    // calls run in the child of this multi-threaded process.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, kSpecEnv, std::strlen(kSpecEnv)) != 0) env_strings.emplace_back(*e);
    }
    env_strings.push_back(std::string(kSpecEnv) + "=" + EncodeSpec(specs));
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    const char* argv[] = {"ucx_transport_test", "--gtest_filter=UcxTransportChild.DISABLED_Producer",
                          "--gtest_also_run_disabled_tests", nullptr};
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return nullptr;
    if (pid == 0) {
      // Dies with the test process: no orphans even if the parent crashes.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      if (dup2(fds[1], kChildFd) < 0 || fcntl(kChildFd, F_SETFD, 0) != 0) _exit(126);
      execve("/proc/self/exe", const_cast<char**>(argv), envp.data());
      _exit(127);
    }
    close(fds[1]);
    auto producer = std::unique_ptr<Producer>(new Producer(pid, fds[0]));
    Status s = producer->ReadExports(Deadline::After(seconds(60)));
    if (!s.ok()) {
      ADD_FAILURE() << "producer did not start: " << s;
      return nullptr;
    }
    return producer;
  }

  ~Producer() {
    if (pid_ > 0) {
      WriteAll(fd_, "q");
      const int wstatus = ReapChild(pid_, Deadline::After(seconds(30)));
      EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "producer wait status " << wstatus;
    }
    close(fd_);
  }

  void Signal(int sig) { kill(pid_, sig); }

  // SIGKILLs the producer and reaps it: it is gone when this returns.
  void Kill() {
    kill(pid_, SIGKILL);
    ReapChild(pid_, Deadline::After(seconds(30)));
    pid_ = -1;
  }

  const std::string& endpoint() const { return endpoint_; }
  const std::string& descriptor(size_t i) const { return descriptors_.at(i); }

 private:
  Producer(pid_t pid, int fd) : pid_(pid), fd_(fd) {}

  Status ReadExports(Deadline deadline) {
    FERRY_ASSIGN_OR_RETURN(endpoint_, ReadString(fd_, deadline));
    FERRY_ASSIGN_OR_RETURN(std::string count, ReadString(fd_, deadline));
    for (int i = 0, n = std::stoi(count); i < n; ++i) {
      FERRY_ASSIGN_OR_RETURN(std::string d, ReadString(fd_, deadline));
      descriptors_.push_back(std::move(d));
    }
    return Status::Ok();
  }

  pid_t pid_;
  int fd_;
  std::string endpoint_;
  std::vector<std::string> descriptors_;
};

// The child's side; runs only when started by Producer::Start.
TEST(UcxTransportChild, DISABLED_Producer) {
  const char* spec = std::getenv(kSpecEnv);
  if (spec == nullptr) GTEST_SKIP() << "runs only as a producer process started by the other tests";
  auto transport = UcxTransport::Create();
  ASSERT_TRUE(transport.ok()) << transport.status();
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<BufferView> views;
  for (const auto& s : DecodeSpec(spec)) buffers.push_back(Pattern(s.size, s.seed));
  for (auto& b : buffers) views.push_back(View(b));
  auto exported = (*transport)->Export(views);
  ASSERT_TRUE(exported.ok()) << exported.status();
  std::string message;
  PutString(message, exported->endpoint);
  PutString(message, std::to_string(exported->descriptors.size()));
  for (const auto& d : exported->descriptors) PutString(message, d);
  ASSERT_TRUE(WriteAll(kChildFd, message));
  // Serve until told to quit or the parent goes away (EOF).
  char command = 0;
  while (read(kChildFd, &command, 1) < 0 && errno == EINTR) {
  }
  (*transport)->Release(views);
}

// The two data paths of a Pull; every pulling test runs on both.
enum class Path { kCma, kUcp };

std::unique_ptr<UcxTransport> MakeTransport(Path path = Path::kCma) {
  UcxOptions options = UcxOptions::FromEnv();
  options.same_host_cma = path == Path::kCma;
  auto t = UcxTransport::Create(options);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

// Producers this transport holds a connection to, on the path it uses.
size_t Connections(UcxTransport& t, Path path) {
  const auto stats = t.stats();
  return path == Path::kCma ? stats.cma_peers : stats.cached_endpoints;
}

// Pulls buffer `index` of `producer` (made from `spec`) and checks its bytes.
void ExpectPulls(UcxTransport& t, const Producer& producer, size_t index, const BufferSpec& spec) {
  std::vector<uint8_t> dst(spec.size, 0);
  PullItem item{producer.endpoint(), producer.descriptor(index), View(dst)};
  Status s = t.Pull({&item, 1}, Deadline::After(seconds(60)));
  ASSERT_TRUE(s.ok()) << "size " << spec.size << ": " << s;
  EXPECT_TRUE(dst == Pattern(spec.size, spec.seed)) << "size " << spec.size << ": bytes differ";
}

bool IsPeerLoss(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kAborted;
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

TEST(UcxTransportTest, NameIsNixl) {
  auto t = MakeTransport();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->name(), "nixl");
  EXPECT_GE(t->stats().lanes, 1);
}

TEST_P(UcxPullTest, PullsEverySizeFromAnotherProcess) {
  const std::vector<BufferSpec> specs = {{0, 1}, {4096, 2}, {1 << 20, 3}, {64 << 20, 4}};
  auto producer = Producer::Start(specs);
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  for (size_t i = 0; i < specs.size(); ++i) ExpectPulls(*t, *producer, i, specs[i]);
  // Again, on the cached connection.
  for (size_t i = 0; i < specs.size(); ++i) ExpectPulls(*t, *producer, i, specs[i]);
  // The path asked for is the one used.
  const auto stats = t->stats();
  if (path() == Path::kCma) {
    EXPECT_EQ(stats.cma_peers, 1u);
    EXPECT_EQ(stats.cached_endpoints, 0u);
  } else {
    EXPECT_EQ(stats.cma_peers, 0u);
    EXPECT_GE(stats.cached_endpoints, 1u);
    EXPECT_LE(stats.cached_endpoints, static_cast<size_t>(stats.lanes)) << "one endpoint per lane at most";
  }
}

TEST_P(UcxPullTest, ZeroByteItemNeedsNoDestination) {
  auto producer = Producer::Start({{0, 1}});
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  PullItem item{producer->endpoint(), producer->descriptor(0), {nullptr, 0}};
  Status s = t->Pull({&item, 1}, Deadline::After(seconds(10)));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(t->stats().cached_endpoints + t->stats().cma_peers, 0u) << "nothing to pull, nothing to connect";
}

TEST_P(UcxPullTest, SeveralItemsInOnePull) {
  const std::vector<BufferSpec> specs = {{12345, 1}, {0, 2}, {4 << 20, 3}, {4096, 4}, {3 << 20, 5}};
  auto producer = Producer::Start(specs);
  ASSERT_NE(producer, nullptr);
  // Two lanes and a low stripe threshold: small items spread, large ones split.
  UcxOptions options = UcxOptions::FromEnv();
  options.same_host_cma = path() == Path::kCma;
  options.pull_lanes = 2;
  options.stripe_min_bytes = 1 << 20;
  auto made = UcxTransport::Create(options);
  ASSERT_TRUE(made.ok()) << made.status();
  auto& t = *made;
  std::vector<std::vector<uint8_t>> dst;
  for (const auto& s : specs) dst.emplace_back(s.size, 0);
  std::vector<PullItem> items;
  for (size_t i = 0; i < specs.size(); ++i) {
    items.push_back({producer->endpoint(), producer->descriptor(i), View(dst[i])});
  }
  Status s = t->Pull(items, Deadline::After(seconds(60)));
  ASSERT_TRUE(s.ok()) << s;
  for (size_t i = 0; i < specs.size(); ++i) {
    EXPECT_TRUE(dst[i] == Pattern(specs[i].size, specs[i].seed)) << "item " << i;
  }
}

TEST_P(UcxPullTest, ItemsFromTwoProducersInOnePull) {
  auto a = Producer::Start({{1 << 20, 11}, {4096, 12}});
  auto b = Producer::Start({{2 << 20, 21}});
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  std::vector<uint8_t> d0(1 << 20), d1(4096), d2(2 << 20);
  PullItem items[] = {{a->endpoint(), a->descriptor(0), View(d0)},
                      {b->endpoint(), b->descriptor(0), View(d2)},
                      {a->endpoint(), a->descriptor(1), View(d1)}};
  Status s = t->Pull(items, Deadline::After(seconds(60)));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(d0 == Pattern(1 << 20, 11));
  EXPECT_TRUE(d1 == Pattern(4096, 12));
  EXPECT_TRUE(d2 == Pattern(2 << 20, 21));
  EXPECT_GE(Connections(*t, path()), 2u);
}

TEST_P(UcxPullTest, ConcurrentPullsFromSeveralThreads) {
  const std::vector<BufferSpec> specs = {{4096, 1}, {1 << 20, 2}, {8 << 20, 3}};
  auto producer = Producer::Start(specs);
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int thread = 0; thread < 4; ++thread) {
    threads.emplace_back([&, thread] {
      for (int round = 0; round < 10; ++round) {
        const size_t i = static_cast<size_t>(thread + round) % specs.size();
        std::vector<uint8_t> dst(specs[i].size, 0);
        PullItem item{producer->endpoint(), producer->descriptor(i), View(dst)};
        Status s = t->Pull({&item, 1}, Deadline::After(seconds(60)));
        if (!s.ok() || dst != Pattern(specs[i].size, specs[i].seed)) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
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

TEST(UcxTransportTest, ExportWithoutAddressIsInvalid) {
  auto t = MakeTransport();
  ASSERT_NE(t, nullptr);
  std::vector<uint8_t> ok(4096);
  auto e = t->Export({View(ok), {nullptr, 16}});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument) << e.status();
  EXPECT_EQ(t->stats().registered_regions, 0u) << "a failed Export keeps nothing";
}

TEST_P(UcxPullTest, PullsBetweenTransportsOfOneProcess) {
  auto producer = MakeTransport();
  auto consumer = Make();
  ASSERT_NE(producer, nullptr);
  ASSERT_NE(consumer, nullptr);
  auto src = Pattern(3 << 20, 7);
  auto e = producer->Export({View(src)});
  ASSERT_TRUE(e.ok()) << e.status();
  std::vector<uint8_t> dst(src.size(), 0);
  PullItem item{e->endpoint, e->descriptors[0], View(dst)};
  Status s = consumer->Pull({&item, 1}, Deadline::After(seconds(60)));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(dst == src);
  producer->Release({View(src)});
}

TEST_P(UcxPullTest, MalformedInputsAreInvalidArgument) {
  auto producer = MakeTransport();
  auto consumer = Make();
  ASSERT_NE(producer, nullptr);
  ASSERT_NE(consumer, nullptr);
  std::vector<uint8_t> src(4096, 5);
  auto e = producer->Export({View(src)});
  ASSERT_TRUE(e.ok()) << e.status();
  std::vector<uint8_t> dst(4096), small(100);
  const std::string& good = e->descriptors[0];
  const std::string truncated = good.substr(0, good.size() - 1);
  std::string wrong_magic = good;
  wrong_magic[0] ^= 0x5a;
  const std::string short_endpoint = e->endpoint.substr(0, e->endpoint.size() - 1);

  struct Case {
    const char* what;
    PullItem item;
  } cases[] = {
      {"garbage descriptor", {e->endpoint, "hello", View(dst)}},
      {"empty descriptor", {e->endpoint, "", View(dst)}},
      {"truncated descriptor", {e->endpoint, truncated, View(dst)}},
      {"wrong magic", {e->endpoint, wrong_magic, View(dst)}},
      {"size mismatch", {e->endpoint, good, View(small)}},
      {"no destination", {e->endpoint, good, {nullptr, 4096}}},
      {"garbage endpoint", {"not an endpoint", good, View(dst)}},
      {"truncated endpoint", {short_endpoint, good, View(dst)}},
  };
  for (const auto& c : cases) {
    const auto start = Clock::now();
    Status s = consumer->Pull({&c.item, 1}, Deadline::After(seconds(30)));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.what << ": " << s;
    EXPECT_LT(Clock::now() - start, seconds(5)) << c.what;
  }
  // A bad item fails the whole Pull before anything moves.
  std::fill(dst.begin(), dst.end(), 0);
  PullItem mixed[] = {{e->endpoint, good, View(dst)}, {e->endpoint, good, View(small)}};
  EXPECT_EQ(consumer->Pull(mixed, Deadline::After(seconds(30))).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(dst, std::vector<uint8_t>(4096, 0));
  // Still usable.
  PullItem item{e->endpoint, good, View(dst)};
  Status s = consumer->Pull({&item, 1}, Deadline::After(seconds(30)));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(dst, src);
  producer->Release({View(src)});
}

TEST_P(UcxPullTest, ProducerKilledBeforeThePullIsUnavailableNotAHang) {
  const BufferSpec spec{1 << 20, 9};
  auto producer = Producer::Start({spec});
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  const std::string endpoint = producer->endpoint(), descriptor = producer->descriptor(0);
  producer->Kill();

  std::vector<uint8_t> dst(spec.size, 0);
  PullItem item{endpoint, descriptor, View(dst)};
  const auto start = Clock::now();
  Status s = t->Pull({&item, 1}, Deadline::After(seconds(30)));
  EXPECT_TRUE(IsPeerLoss(s)) << s;
  EXPECT_LT(Clock::now() - start, seconds(10)) << "far from the 30 s deadline";
  EXPECT_EQ(Connections(*t, path()), 0u) << "a failed connection is not kept";

  // The transport still works with a live producer.
  auto again = Producer::Start({spec});
  ASSERT_NE(again, nullptr);
  ExpectPulls(*t, *again, 0, spec);
}

TEST_P(UcxPullTest, ProducerKilledAfterAPullFailsTheNextOnCachedConnection) {
  const BufferSpec spec{4 << 20, 10};
  auto producer = Producer::Start({spec});
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  ExpectPulls(*t, *producer, 0, spec);
  ASSERT_GE(Connections(*t, path()), 1u);
  const std::string endpoint = producer->endpoint(), descriptor = producer->descriptor(0);
  producer->Kill();

  std::vector<uint8_t> dst(spec.size, 0);
  PullItem item{endpoint, descriptor, View(dst)};
  const auto start = Clock::now();
  Status s = t->Pull({&item, 1}, Deadline::After(seconds(30)));
  EXPECT_TRUE(IsPeerLoss(s)) << s;
  EXPECT_LT(Clock::now() - start, seconds(10));
  // A second try fails the same way (it reconnects, and that fails).
  s = t->Pull({&item, 1}, Deadline::After(seconds(30)));
  EXPECT_TRUE(IsPeerLoss(s)) << s;
  EXPECT_EQ(Connections(*t, path()), 0u);
}

TEST_P(UcxPullTest, ProducerKilledDuringPullsNeverHangs) {
  const BufferSpec spec{32 << 20, 12};
  auto producer = Producer::Start({spec});
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  const std::string endpoint = producer->endpoint(), descriptor = producer->descriptor(0);
  const auto expected = Pattern(spec.size, spec.seed);
  std::atomic<bool> killed{false};
  std::thread killer;
  Status last;
  std::vector<uint8_t> dst(spec.size);
  for (int round = 0; round < 1000 && last.ok(); ++round) {
    if (round == 2) {
      killer = std::thread([&] {
        producer->Kill();
        killed = true;
      });
    }
    PullItem item{endpoint, descriptor, View(dst)};
    const auto start = Clock::now();
    last = t->Pull({&item, 1}, Deadline::After(seconds(30)));
    EXPECT_LT(Clock::now() - start, seconds(10)) << "round " << round;
    if (last.ok()) {
      ASSERT_TRUE(dst == expected) << "round " << round;
    }
  }
  killer.join();
  EXPECT_TRUE(killed.load());
  EXPECT_TRUE(IsPeerLoss(last)) << last;
}

TEST_P(UcxPullTest, DeadlineCancelsAndNothingWritesLater) {
  const BufferSpec spec{64 << 20, 13};
  auto producer = Producer::Start({spec});
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  std::vector<uint8_t> dst(spec.size, 0);
  PullItem item{producer->endpoint(), producer->descriptor(0), View(dst)};
  // No host copies 64 MiB in 1 ms.
  const auto start = Clock::now();
  Status s = t->Pull({&item, 1}, Deadline::After(milliseconds(1)));
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s;
  EXPECT_LT(Clock::now() - start, seconds(5));
  const std::vector<uint8_t> snapshot = dst;

  // A full pull on the same transport progresses every lane; the cancelled
  // gets must not resume into `dst`.
  std::vector<uint8_t> other(spec.size, 0);
  PullItem next{producer->endpoint(), producer->descriptor(0), View(other)};
  s = t->Pull({&next, 1}, Deadline::After(seconds(60)));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(other == Pattern(spec.size, spec.seed));
  EXPECT_TRUE(dst == snapshot) << "a cancelled get wrote after Pull returned";
}

// A producer that is alive but never runs: the UCP path needs nothing from
// it on RDMA hardware, but over tcp its worker must answer each emulated get,
// so the Pull ends at its deadline; the CMA path does not need it to run.
TEST_P(UcxPullTest, StoppedProducer) {
  const BufferSpec spec{1 << 20, 14};
  auto producer = Producer::Start({spec});
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  producer->Signal(SIGSTOP);
  std::vector<uint8_t> dst(spec.size, 0);
  PullItem item{producer->endpoint(), producer->descriptor(0), View(dst)};
  const auto start = Clock::now();
  Status s = t->Pull({&item, 1}, Deadline::After(milliseconds(500)));
  const auto took = Clock::now() - start;
  if (path() == Path::kCma) {
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_TRUE(dst == Pattern(spec.size, spec.seed));
  } else {
    EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s;
    EXPECT_LT(took, seconds(5)) << "the deadline plus a bounded close";
  }
  producer->Signal(SIGCONT);
  ExpectPulls(*t, *producer, 0, spec);
}

TEST_P(UcxPullTest, ExpiredDeadlineFailsAtOnce) {
  auto producer = Producer::Start({{4096, 1}});
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  std::vector<uint8_t> dst(4096);
  PullItem item{producer->endpoint(), producer->descriptor(0), View(dst)};
  Status s = t->Pull({&item, 1}, Deadline::After(milliseconds(-1)));
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s;
  ExpectPulls(*t, *producer, 0, {4096, 1});
}

// The CMA path names a producer by pid and start time; a process with the
// producer's pid but another start time (a recycled pid) is never read.
TEST(UcxTransportTest, CmaRefusesAProcessThatMerelyHasTheProducersPid) {
  auto producer = Producer::Start({{4096, 1}});
  ASSERT_NE(producer, nullptr);
  auto t = MakeTransport(Path::kCma);
  ASSERT_NE(t, nullptr);
  // White box: the endpoint starts magic(4) address_len(4) pid(8)
  // start_time(8); shift the start time.
  std::string endpoint = producer->endpoint();
  ASSERT_GT(endpoint.size(), 24u);
  endpoint[16] ^= 0x01;
  std::vector<uint8_t> dst(4096, 0);
  PullItem item{endpoint, producer->descriptor(0), View(dst)};
  Status s = t->Pull({&item, 1}, Deadline::After(seconds(10)));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s;
  EXPECT_EQ(dst, std::vector<uint8_t>(4096, 0));
  ExpectPulls(*t, *producer, 0, {4096, 1});  // the genuine endpoint still works
}

}  // namespace
}  // namespace ferry::transport
