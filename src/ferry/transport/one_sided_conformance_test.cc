// One test body for every OneSidedTransport, over every variant this build
// has (one_sided_conformance.h): shm with the producer's buffers in its arena
// (ARENA descriptors) and in heap memory (VM descriptors), nixl over UCX on
// its same-host CMA path and on its UCP get path, and the in-process fake.
// Producers are other processes (this binary re-executed), except for the
// fake. What only one backend does (its statistics, caches, wire formats)
// stays in that backend's own test.
#include "ferry/transport/one_sided_conformance.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ferry/testing/deadline.h"
#include "ferry/transport/fake_one_sided_transport.h"
#include "ferry/transport/registry.h"

namespace ferry::transport::conformance {
namespace {

using ferry::testing::Soon;
using std::chrono::milliseconds;
using std::chrono::seconds;

class OneSidedConformanceTest : public ::testing::TestWithParam<Variant> {
 protected:
  const Variant& variant() const { return GetParam(); }

  // A transport of this process: a consumer, or a producer in this process.
  std::unique_ptr<OneSidedTransport> Make() {
    if (variant().fake)
      return fabric_.Transport("fake", "process-" + std::to_string(next_process_++));
    auto t = variant().make();
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *std::move(t) : nullptr;
  }

  // A producer in another process (for the fake, another endpoint).
  std::unique_ptr<Producer> StartProducer(const std::vector<BufferSpec>& specs) {
    if (variant().fake) return StartInProcessProducer(Make(), Memory::kHeap, specs, &fabric_);
    return StartProcessProducer(variant(), specs);
  }

  // A producer that is another transport of this process.
  std::unique_ptr<Producer> StartLocalProducer(const std::vector<BufferSpec>& specs) {
    auto t = Make();
    if (t == nullptr) return nullptr;
    return StartInProcessProducer(std::move(t), variant().memory, specs,
                                  variant().fake ? &fabric_ : nullptr);
  }

  // The connections or mappings `t` holds, where the variant counts them.
  std::optional<size_t> Held(OneSidedTransport& t) {
    return variant().held ? variant().held(t) : std::nullopt;
  }

  // Pulls buffer `index` of `producer` into `dst`.
  static Status PullTo(OneSidedTransport& t, const Producer& producer, size_t index,
                       Destination& dst, Deadline deadline) {
    PullItem item{producer.endpoint(), producer.descriptor(index), dst.view()};
    return t.Pull({&item, 1}, deadline);
  }

  // Pulls buffer `index` of `producer` (made from `spec`) and checks its
  // bytes.
  void ExpectPulls(OneSidedTransport& t, const Producer& producer, size_t index,
                   const BufferSpec& spec) {
    Destination dst(spec.size);
    Status s = PullTo(t, producer, index, dst, Deadline::After(kPullWait));
    ASSERT_TRUE(s.ok()) << "size " << spec.size << ": " << s;
    EXPECT_EQ(dst.Check(spec.seed), -1)
        << "size " << spec.size << ": bytes differ (-2: wrote past the end)";
  }

  // Where the variant counts them, `t` holds no connections or mappings.
  void ExpectNoneHeld(OneSidedTransport& t, const char* why) {
    if (auto held = Held(t)) {
      EXPECT_EQ(*held, 0u) << why;
    }
  }

  // A pull from a producer that is gone.
  void ExpectGone(const Status& s) {
    if (variant().gone_may_abort) {
      EXPECT_TRUE(s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kAborted) << s;
    } else {
      EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s;
    }
    EXPECT_NE(s.message().find(variant().gone_says), std::string::npos) << s;
  }

  FakeOneSidedFabric fabric_;
  int next_process_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Variants, OneSidedConformanceTest, ::testing::ValuesIn(Variants()),
                         [](const ::testing::TestParamInfo<Variant>& info) {
                           return info.param.label;
                         });

TEST_P(OneSidedConformanceTest, NameIsTheBackendName) {
  auto t = Make();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->name(), variant().name);
  if (!variant().fake) {
    auto registered = CreateOneSidedTransport(variant().name);
    ASSERT_TRUE(registered.ok()) << registered.status();
    EXPECT_EQ((*registered)->name(), variant().name);
  }
}

TEST_P(OneSidedConformanceTest, PullsEverySizeFromAnotherProcess) {
  const std::vector<BufferSpec> specs = {{0, 1}, {4096, 2}, {1 << 20, 3}, {64 << 20, 4}};
  auto producer = StartProducer(specs);
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  for (size_t i = 0; i < specs.size(); ++i) ExpectPulls(*t, *producer, i, specs[i]);
  // Again, on what the first pulls connected or mapped.
  for (size_t i = 0; i < specs.size(); ++i) ExpectPulls(*t, *producer, i, specs[i]);
}

TEST_P(OneSidedConformanceTest, EmptyPullAndZeroByteItemsNeedNoDestination) {
  auto t = Make();
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->Pull({}, Soon()).ok());
  // From another process.
  auto producer = StartProducer({{0, 1}});
  ASSERT_NE(producer, nullptr);
  PullItem item{producer->endpoint(), producer->descriptor(0), {nullptr, 0}};
  Status s = t->Pull({&item, 1}, Deadline::After(seconds(10)));
  EXPECT_TRUE(s.ok()) << s;
  // From this process, exported without an address.
  auto local = Make();
  ASSERT_NE(local, nullptr);
  auto e = local->Export({{nullptr, 0}});
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->descriptors.size(), 1u);
  PullItem own{e->endpoint, e->descriptors[0], {nullptr, 0}};
  s = t->Pull({&own, 1}, Deadline::After(seconds(10)));
  EXPECT_TRUE(s.ok()) << s;
  ExpectNoneHeld(*t, "nothing to pull, nothing to connect");
  local->Release({{nullptr, 0}});
}

TEST_P(OneSidedConformanceTest, SeveralItemsInOnePull) {
  const std::vector<BufferSpec> specs = {{12345, 1}, {0, 2}, {4 << 20, 3}, {4096, 4}, {3 << 20, 5}};
  auto producer = StartProducer(specs);
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  std::vector<Destination> dst;
  for (const BufferSpec& s : specs) dst.emplace_back(s.size);
  std::vector<PullItem> items;
  for (size_t i = 0; i < specs.size(); ++i) {
    items.push_back({producer->endpoint(), producer->descriptor(i), dst[i].view()});
  }
  Status s = t->Pull(items, Deadline::After(kPullWait));
  ASSERT_TRUE(s.ok()) << s;
  for (size_t i = 0; i < specs.size(); ++i)
    EXPECT_EQ(dst[i].Check(specs[i].seed), -1) << "item " << i;
}

TEST_P(OneSidedConformanceTest, ItemsFromTwoProducersInOnePull) {
  const std::vector<BufferSpec> a = {{2 << 20, 11}, {100 << 10, 12}};
  const std::vector<BufferSpec> b = {{(3 << 20) + 5, 21}, {1 << 20, 22}};
  auto pa = StartProducer(a);
  auto pb = StartProducer(b);
  ASSERT_NE(pa, nullptr);
  ASSERT_NE(pb, nullptr);
  ASSERT_NE(pa->endpoint(), pb->endpoint());
  auto t = Make();
  ASSERT_NE(t, nullptr);
  Destination a0(a[0].size), a1(a[1].size), b0(b[0].size), b1(b[1].size);
  const PullItem items[] = {{pa->endpoint(), pa->descriptor(0), a0.view()},
                            {pb->endpoint(), pb->descriptor(0), b0.view()},
                            {pa->endpoint(), pa->descriptor(1), a1.view()},
                            {pb->endpoint(), pb->descriptor(1), b1.view()}};
  Status s = t->Pull(items, Deadline::After(kPullWait));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(a0.Check(a[0].seed), -1);
  EXPECT_EQ(a1.Check(a[1].seed), -1);
  EXPECT_EQ(b0.Check(b[0].seed), -1);
  EXPECT_EQ(b1.Check(b[1].seed), -1);
  if (auto held = Held(*t)) {
    EXPECT_GE(*held, 2u) << "one per producer at least";
  }
}

TEST_P(OneSidedConformanceTest, ConcurrentPullsFromSeveralThreads) {
  const std::vector<BufferSpec> specs = {{4096, 1}, {1 << 20, 2}, {8 << 20, 3}};
  auto producer = StartProducer(specs);
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int thread = 0; thread < 4; ++thread) {
    threads.emplace_back([&, thread] {
      for (int round = 0; round < 10; ++round) {
        const size_t i = static_cast<size_t>(thread + round) % specs.size();
        Destination dst(specs[i].size);
        Status s = PullTo(*t, *producer, i, dst, Deadline::After(kPullWait));
        if (!s.ok() || dst.Check(specs[i].seed) != -1) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_P(OneSidedConformanceTest, PullsBetweenTransportsOfOneProcess) {
  const BufferSpec spec{3 << 20, 7};
  auto producer = StartLocalProducer({spec});
  auto consumer = Make();
  ASSERT_NE(producer, nullptr);
  ASSERT_NE(consumer, nullptr);
  ExpectPulls(*consumer, *producer, 0, spec);
}

TEST_P(OneSidedConformanceTest, ExportIsCountedAndReleaseUndoesOneExport) {
  auto producer = Make();
  auto consumer = Make();
  ASSERT_NE(producer, nullptr);
  ASSERT_NE(consumer, nullptr);
  PatternedBuffers bufs(variant().memory, {{1 << 20, 1}, {4096, 2}});
  const BufferView a = bufs.view(0), b = bufs.view(1);
  auto first = producer->Export({a});
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = producer->Export({a, b});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->endpoint, second->endpoint) << "one endpoint per transport";
  producer->Release({a});
  // `a` is still exported once: the second export's descriptors still pull.
  for (size_t i = 0; i < 2; ++i) {
    Destination dst(bufs.view(i).nbytes);
    PullItem item{second->endpoint, second->descriptors[i], dst.view()};
    Status s = consumer->Pull({&item, 1}, Deadline::After(kPullWait));
    ASSERT_TRUE(s.ok()) << "buffer " << i << ": " << s;
    EXPECT_EQ(dst.Check(i + 1), -1) << "buffer " << i;
  }
  producer->Release({a, b});
  producer->Release({a});  // no longer exported: ignored
  std::vector<uint8_t> never(64);
  producer->Release({{never.data(), never.size()}});  // never exported: ignored
  producer->Release({});
}

TEST_P(OneSidedConformanceTest, ExportOfANullBufferIsInvalidArgument) {
  auto t = Make();
  ASSERT_NE(t, nullptr);
  std::vector<uint8_t> ok(4096);
  auto e = t->Export({{ok.data(), ok.size()}, {nullptr, 16}});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument) << e.status();
}

TEST_P(OneSidedConformanceTest, MalformedItemsAreInvalidArgument) {
  const BufferSpec spec{4096, 5};
  auto producer = StartLocalProducer({spec});
  auto consumer = Make();
  ASSERT_NE(producer, nullptr);
  ASSERT_NE(consumer, nullptr);
  const std::string& endpoint = producer->endpoint();
  const std::string& good = producer->descriptor(0);
  Destination dst(4096), small(100), large(4097);
  const std::string truncated = good.substr(0, good.size() - 1);
  const std::string extended = good + "x";
  std::string wrong_magic = good;
  wrong_magic[0] ^= 0x5a;

  struct Case {
    const char* what;
    PullItem item;
  } cases[] = {
      {"garbage descriptor", {endpoint, "hello", dst.view()}},
      {"empty descriptor", {endpoint, "", dst.view()}},
      {"truncated descriptor", {endpoint, truncated, dst.view()}},
      {"descriptor one byte too long", {endpoint, extended, dst.view()}},
      {"wrong magic", {endpoint, wrong_magic, dst.view()}},
      {"destination too small", {endpoint, good, small.view()}},
      {"destination too large", {endpoint, good, large.view()}},
      {"garbage endpoint", {"not an endpoint", good, dst.view()}},
      {"empty endpoint", {"", good, dst.view()}},
  };
  for (const auto& c : cases) {
    const auto start = Clock::now();
    Status s = consumer->Pull({&c.item, 1}, Deadline::After(seconds(30)));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.what << ": " << s;
    EXPECT_LT(Clock::now() - start, seconds(5)) << c.what;
  }
  EXPECT_TRUE(dst.IsJunk()) << "a refused item wrote into its destination";
  ExpectPulls(*consumer, *producer, 0, spec);  // still usable
}

TEST_P(OneSidedConformanceTest, BadItemFailsTheWholePullBeforeAnythingMoves) {
  const BufferSpec spec{4096, 5};
  auto producer = StartLocalProducer({spec});
  auto consumer = Make();
  ASSERT_NE(producer, nullptr);
  ASSERT_NE(consumer, nullptr);
  const std::string& endpoint = producer->endpoint();
  const std::string& good = producer->descriptor(0);
  PullItem no_destination{endpoint, good, {nullptr, 4096}};
  EXPECT_EQ(consumer->Pull({&no_destination, 1}, Deadline::After(seconds(30))).code(),
            StatusCode::kInvalidArgument);
  Destination dst(4096), small(100);
  const PullItem mixed[] = {{endpoint, good, dst.view()}, {endpoint, good, small.view()}};
  EXPECT_EQ(consumer->Pull(mixed, Deadline::After(seconds(30))).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(dst.IsJunk()) << "the good item moved although the pull failed";
  ExpectPulls(*consumer, *producer, 0, spec);  // still usable
}

TEST_P(OneSidedConformanceTest, ExpiredDeadlineFailsAtOnce) {
  const std::vector<BufferSpec> specs = {{4096, 1}, {1 << 20, 2}};
  auto producer = StartProducer(specs);
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  for (size_t i = 0; i < specs.size(); ++i) {
    Destination dst(specs[i].size);
    Status s = PullTo(*t, *producer, i, dst, Deadline::After(milliseconds(-1)));
    EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s;
    s = PullTo(*t, *producer, i, dst, Deadline::Never());
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(dst.Check(specs[i].seed), -1);
  }
}

TEST_P(OneSidedConformanceTest, DeadlineCancelsAndNothingWritesLater) {
  if (variant().fake) GTEST_SKIP() << "the fake's copy is one memcpy it does not interrupt";
  // 64 MiB in eight items: a backend that checks its deadline between items
  // (shm) sees it pass, as does one that cancels copies in flight (nixl).
  std::vector<BufferSpec> specs;
  for (uint64_t seed = 1; seed <= 8; ++seed) specs.push_back({8 << 20, seed});
  auto producer = StartProducer(specs);
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  std::vector<std::vector<uint8_t>> dst(specs.size(), std::vector<uint8_t>(8 << 20, 0));
  std::vector<PullItem> items;
  for (size_t i = 0; i < specs.size(); ++i) {
    items.push_back(
        {producer->endpoint(), producer->descriptor(i), {dst[i].data(), dst[i].size()}});
  }
  // No host copies 64 MiB in 1 ms.
  const auto start = Clock::now();
  Status s = t->Pull(items, Deadline::After(milliseconds(1)));
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s;
  EXPECT_LT(Clock::now() - start, seconds(5));
  const std::vector<std::vector<uint8_t>> snapshot = dst;

  // A full pull on the same transport (for nixl it progresses every lane);
  // whatever the cancelled pull left must not resume into `dst`.
  std::vector<Destination> other(specs.size(), Destination(8 << 20));
  for (size_t i = 0; i < specs.size(); ++i) items[i].dst = other[i].view();
  s = t->Pull(items, Deadline::After(kPullWait));
  ASSERT_TRUE(s.ok()) << s;
  for (size_t i = 0; i < specs.size(); ++i)
    EXPECT_EQ(other[i].Check(specs[i].seed), -1) << "item " << i;
  EXPECT_TRUE(dst == snapshot) << "a cancelled copy wrote after Pull returned";
}

TEST_P(OneSidedConformanceTest, ProducerKilledBeforeThePullIsGoneQuickly) {
  const BufferSpec spec{16 << 20, 9};
  auto producer = StartProducer({spec});
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  producer->Kill();
  Destination dst(spec.size);
  const auto start = Clock::now();
  ExpectGone(PullTo(*t, *producer, 0, dst, Deadline::After(seconds(30))));
  EXPECT_LT(Clock::now() - start, variant().gone_within) << "far from the 30 s deadline";
  ExpectNoneHeld(*t, "a failed connection is not kept");

  // The transport still works with a live producer.
  auto again = StartProducer({spec});
  ASSERT_NE(again, nullptr);
  ExpectPulls(*t, *again, 0, spec);
}

TEST_P(OneSidedConformanceTest, ZombieProducerIsGone) {
  const BufferSpec spec{1 << 20, 9};
  auto producer = StartProducer({spec});
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  producer->KillNoReap();
  Destination dst(spec.size);
  ExpectGone(PullTo(*t, *producer, 0, dst, Deadline::After(seconds(30))));
}

TEST_P(OneSidedConformanceTest, ProducerKilledAfterAPullFailsTheNextPulls) {
  const BufferSpec spec{4 << 20, 10};
  auto producer = StartProducer({spec});
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  ExpectPulls(*t, *producer, 0, spec);
  if (auto held = Held(*t)) {
    ASSERT_GE(*held, 1u);
  }
  producer->Kill();

  Destination dst(spec.size);
  const auto start = Clock::now();
  ExpectGone(PullTo(*t, *producer, 0, dst, Deadline::After(seconds(30))));
  EXPECT_LT(Clock::now() - start, variant().gone_within);
  ExpectNoneHeld(*t, "what the first pull connected or mapped goes");
  // A second try fails the same way (a backend that reconnects fails to).
  ExpectGone(PullTo(*t, *producer, 0, dst, Deadline::After(seconds(30))));
  ExpectNoneHeld(*t, "the second try keeps nothing either");
}

TEST_P(OneSidedConformanceTest, ProducerKilledDuringPullsNeverHangs) {
  const BufferSpec spec{32 << 20, 12};
  auto producer = StartProducer({spec});
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  std::atomic<bool> killed{false};
  std::thread killer;
  Status last;
  Destination dst(spec.size);
  for (int round = 0; round < 1000 && last.ok(); ++round) {
    if (round == 2) {
      killer = std::thread([&] {
        producer->Kill();
        killed = true;
      });
    }
    const auto start = Clock::now();
    last = PullTo(*t, *producer, 0, dst, Deadline::After(seconds(30)));
    EXPECT_LT(Clock::now() - start, seconds(10)) << "round " << round;
    if (last.ok() && dst.Check(spec.seed) != -1) {
      ADD_FAILURE() << "round " << round << ": bytes differ";
      break;
    }
  }
  if (killer.joinable()) killer.join();
  EXPECT_TRUE(killed.load());
  ExpectGone(last);
}

// A producer that is alive but never runs. A one-sided pull needs nothing
// from it, except on nixl's UCP path over tcp, where its worker must answer
// each emulated get: that pull ends at its deadline instead.
TEST_P(OneSidedConformanceTest, StoppedProducer) {
  const BufferSpec spec{1 << 20, 14};
  auto producer = StartProducer({spec});
  ASSERT_NE(producer, nullptr);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  producer->Stop();
  Destination dst(spec.size);
  const auto start = Clock::now();
  Status s = PullTo(*t, *producer, 0, dst, Deadline::After(milliseconds(500)));
  const auto took = Clock::now() - start;
  if (variant().needs_running_producer) {
    EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s;
    EXPECT_LT(took, seconds(5)) << "the deadline plus a bounded close";
  } else {
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(dst.Check(spec.seed), -1);
  }
  producer->Continue();
  ExpectPulls(*t, *producer, 0, spec);
}

}  // namespace
}  // namespace ferry::transport::conformance
