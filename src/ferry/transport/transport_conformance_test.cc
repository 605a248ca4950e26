// One test body for every TwoSidedTransport: the in-process fake and, where
// built, Gloo (ranks as threads of this process sharing an in-memory store).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "ferry/config.h"
#include "ferry/testing/pattern.h"
#include "ferry/transport/fake_transport.h"
#include "ferry/transport/in_memory_rendezvous_store.h"
#include "ferry/transport/registry.h"
#include "ferry/transport/test_util.h"

namespace ferry::transport {
namespace {

using ferry::testing::Pattern;
using std::chrono::milliseconds;
using testing::Recorder;
using testing::View;

// The ranks of one group. Transports go before the group they belong to.
class Group {
 public:
  virtual ~Group() = default;
  TwoSidedTransport& operator[](int rank) { return *transports_[rank]; }
  // Destroys every rank (each waits for its callbacks).
  void Destroy() { transports_.clear(); }

 protected:
  std::vector<std::unique_ptr<TwoSidedTransport>> transports_;
};

class FakeGroup : public Group {
 public:
  FakeGroup(int size, milliseconds transfer_timeout)
      : group_(size, FakeTransportOptions{transfer_timeout}) {
    for (int r = 0; r < size; ++r) transports_.push_back(group_.Transport(r));
  }
  ~FakeGroup() override { Destroy(); }
  FakeTransportGroup& fake() { return group_; }

 private:
  FakeTransportGroup group_;
};

class RegistryGroup : public Group {
 public:
  RegistryGroup(const std::string& backend, int size, milliseconds transfer_timeout) {
    static std::atomic<int> instance{0};
    const std::string prefix = "conformance-" + std::to_string(instance++);
    std::vector<StatusOr<std::unique_ptr<TwoSidedTransport>>> made;
    for (int r = 0; r < size; ++r) made.emplace_back(Status::Internal("not run"));
    std::vector<std::thread> threads;
    for (int r = 0; r < size; ++r) {
      threads.emplace_back([&, r] {
        TransportOptions options;
        options.prefix = prefix;
        options.rank = r;
        options.size = size;
        options.connect_timeout = std::chrono::seconds(30);
        options.transfer_timeout = transfer_timeout;
        made[r] = CreateTwoSidedTransport(backend, store_, options);
      });
    }
    for (auto& t : threads) t.join();
    for (auto& m : made) {
      if (!m.ok()) {
        status_ = m.status();
        return;
      }
      transports_.push_back(std::move(*m));
    }
  }
  ~RegistryGroup() override { Destroy(); }
  const Status& status() const { return status_; }

 private:
  InMemoryRendezvousStore store_;
  Status status_;
};

class TransportConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  // A two-rank group of the backend under test.
  std::unique_ptr<Group> MakeGroup(milliseconds transfer_timeout = std::chrono::seconds(60),
                                   int size = 2) {
    if (GetParam() == "fake") return std::make_unique<FakeGroup>(size, transfer_timeout);
    auto group = std::make_unique<RegistryGroup>(GetParam(), size, transfer_timeout);
    EXPECT_TRUE(group->status().ok()) << group->status();
    if (!group->status().ok()) return nullptr;
    return group;
  }
};

TEST_P(TransportConformanceTest, MultiBufferTransferArrivesByteExactInOrder) {
  auto g = MakeGroup();
  ASSERT_TRUE(g);
  std::vector<std::vector<uint8_t>> src, dst;
  for (size_t n : {size_t{1}, size_t{4099}, size_t{(1 << 20) + 7}, size_t{64}}) {
    src.push_back(Pattern(n, src.size() + 1));
    dst.emplace_back(n, 0);
  }
  std::vector<BufferView> send_views, recv_views;
  for (size_t i = 0; i < src.size(); ++i) {
    send_views.push_back(View(src[i]));
    recv_views.push_back(View(dst[i]));
  }
  auto sent = Recorder::Make(), got = Recorder::Make();
  (*g)[1].Recv(0, 42, recv_views, Recorder::Callback(got));
  (*g)[0].Send(1, 42, send_views, Recorder::Callback(sent));
  ASSERT_TRUE(sent->Wait().ok()) << sent->Wait();
  ASSERT_TRUE(got->Wait().ok()) << got->Wait();
  EXPECT_EQ(dst, src);
  g->Destroy();
  EXPECT_EQ(sent->calls(), 1);
  EXPECT_EQ(got->calls(), 1);
}

TEST_P(TransportConformanceTest, ZeroByteAnd64MiBBuffers) {
  auto g = MakeGroup();
  ASSERT_TRUE(g);
  auto big = Pattern(64 << 20, 7);
  std::vector<uint8_t> big_dst(big.size(), 0);
  uint8_t dummy_src = 1, dummy_dst = 2;
  // Zero-byte buffers first, middle and last, with null and non-null pointers.
  std::vector<BufferView> send = {{nullptr, 0}, View(big), {&dummy_src, 0}};
  std::vector<BufferView> recv = {{nullptr, 0}, View(big_dst), {&dummy_dst, 0}};
  auto s1 = Recorder::Make(), r1 = Recorder::Make();
  (*g)[0].Send(1, 1, send, Recorder::Callback(s1));
  (*g)[1].Recv(0, 1, recv, Recorder::Callback(r1));
  // A transfer of only empty buffers, and one of no buffers at all.
  auto s2 = Recorder::Make(), r2 = Recorder::Make(), s3 = Recorder::Make(), r3 = Recorder::Make();
  (*g)[0].Send(1, 2, {{nullptr, 0}}, Recorder::Callback(s2));
  (*g)[1].Recv(0, 2, {{nullptr, 0}}, Recorder::Callback(r2));
  (*g)[1].Send(0, 3, {}, Recorder::Callback(s3));
  (*g)[0].Recv(1, 3, {}, Recorder::Callback(r3));
  for (auto& r : {s1, r1, s2, r2, s3, r3}) EXPECT_TRUE(r->Wait().ok()) << r->Wait();
  EXPECT_TRUE(big_dst == big);
  EXPECT_EQ(dummy_dst, 2);
}

TEST_P(TransportConformanceTest, ConcurrentTagsNeverMixEvenPostedInOppositeOrders) {
  auto g = MakeGroup();
  ASSERT_TRUE(g);
  constexpr size_t kBytes = 4 << 20;  // same size, so a mix-up would not fail on size
  auto a = Pattern(kBytes, 100), b = Pattern(kBytes, 200);
  std::vector<uint8_t> a_dst(kBytes), b_dst(kBytes);
  auto sa = Recorder::Make(), sb = Recorder::Make(), ra = Recorder::Make(), rb = Recorder::Make();
  (*g)[0].Send(1, 1001, {View(a)}, Recorder::Callback(sa));
  (*g)[0].Send(1, 1002, {View(b)}, Recorder::Callback(sb));
  (*g)[1].Recv(0, 1002, {View(b_dst)}, Recorder::Callback(rb));
  (*g)[1].Recv(0, 1001, {View(a_dst)}, Recorder::Callback(ra));
  for (auto& r : {sa, sb, ra, rb}) ASSERT_TRUE(r->Wait().ok()) << r->Wait();
  EXPECT_TRUE(a_dst == a);
  EXPECT_TRUE(b_dst == b);
}

TEST_P(TransportConformanceTest, ManyConcurrentTransfersBothWays) {
  auto g = MakeGroup();
  ASSERT_TRUE(g);
  constexpr int kPerSide = 24;
  std::vector<std::vector<uint8_t>> src, dst;
  std::vector<std::shared_ptr<Recorder>> recorders;
  for (int i = 0; i < 2 * kPerSide; ++i) {
    src.push_back(Pattern(1000 + 37 * i, i));
    dst.emplace_back(src.back().size(), 0);
  }
  // Receives are posted in reverse, so every receive waits on a later send.
  for (int i = 2 * kPerSide - 1; i >= 0; --i) {
    const int to = i % 2, from = 1 - to;
    recorders.push_back(Recorder::Make());
    (*g)[to].Recv(from, 5000 + i, {View(dst[i])}, Recorder::Callback(recorders.back()));
  }
  for (int i = 0; i < 2 * kPerSide; ++i) {
    const int to = i % 2, from = 1 - to;
    recorders.push_back(Recorder::Make());
    (*g)[from].Send(to, 5000 + i, {View(src[i])}, Recorder::Callback(recorders.back()));
  }
  for (auto& r : recorders) ASSERT_TRUE(r->Wait().ok()) << r->Wait();
  EXPECT_EQ(dst, src);
}

TEST_P(TransportConformanceTest, RecvWithoutSendTimesOutAndDoesNotBlockAnotherTransfer) {
  const auto timeout = milliseconds(2000);
  auto g = MakeGroup(timeout);
  ASSERT_TRUE(g);
  auto orphan = Recorder::Make();
  const auto start = Clock::now();
  std::vector<uint8_t> orphan_dst(16);
  (*g)[0].Recv(1, 7, {View(orphan_dst)}, Recorder::Callback(orphan));

  auto data = Pattern(1 << 16, 3);
  std::vector<uint8_t> data_dst(data.size());
  auto s = Recorder::Make(), r = Recorder::Make();
  (*g)[1].Send(0, 8, {View(data)}, Recorder::Callback(s));
  (*g)[0].Recv(1, 8, {View(data_dst)}, Recorder::Callback(r));
  ASSERT_TRUE(r->Wait().ok()) << r->Wait();
  ASSERT_TRUE(s->Wait().ok()) << s->Wait();
  EXPECT_TRUE(data_dst == data);
  EXPECT_FALSE(orphan->fired()) << "the orphan receive ended before its timeout";

  Status st = orphan->Wait(std::chrono::seconds(30));
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded) << st;
  EXPECT_GE(Clock::now() - start, timeout);
  // The timeout aborted rank 0: a later call fails at once.
  auto later = Recorder::Make();
  (*g)[0].Send(1, 9, {View(data)}, Recorder::Callback(later));
  EXPECT_FALSE(later->Wait(std::chrono::seconds(10)).ok());
}

TEST_P(TransportConformanceTest, AbortFailsPendingAndLaterCallsExactlyOnce) {
  auto g = MakeGroup();  // 60 s transfer timeout: every failure below comes from Abort
  ASSERT_TRUE(g);
  std::vector<uint8_t> buf(1 << 20);
  auto pending_recv = Recorder::Make(), pending_send = Recorder::Make(),
       peer_recv = Recorder::Make();
  (*g)[0].Recv(1, 1, {View(buf)}, Recorder::Callback(pending_recv));
  (*g)[0].Send(1, 2, {View(buf)}, Recorder::Callback(pending_send));  // rank 1 never receives tag 2
  std::vector<uint8_t> peer_buf(8);
  (*g)[1].Recv(0, 3, {View(peer_buf)}, Recorder::Callback(peer_recv));

  const Status reason = Status::Aborted("test: group torn down");
  (*g)[0].Abort(reason);
  (*g)[0].Abort(Status::Internal("second abort is ignored"));
  EXPECT_EQ(pending_recv->Wait(std::chrono::seconds(20)), reason);
  EXPECT_EQ(pending_send->Wait(std::chrono::seconds(20)), reason);

  auto later_send = Recorder::Make(), later_recv = Recorder::Make();
  (*g)[0].Send(1, 4, {View(buf)}, Recorder::Callback(later_send));
  (*g)[0].Recv(1, 5, {View(buf)}, Recorder::Callback(later_recv));
  EXPECT_EQ(later_send->Wait(std::chrono::seconds(20)), reason);
  EXPECT_EQ(later_recv->Wait(std::chrono::seconds(20)), reason);

  // The peer's transfer with the aborted rank fails well before its timeout.
  Status peer = peer_recv->Wait(std::chrono::seconds(20));
  EXPECT_FALSE(peer.ok());
  EXPECT_NE(peer.code(), StatusCode::kDeadlineExceeded) << peer;

  g->Destroy();  // waits for every callback
  for (auto& r : {pending_recv, pending_send, peer_recv, later_send, later_recv})
    EXPECT_EQ(r->calls(), 1);
}

TEST_P(TransportConformanceTest, MismatchedBuffersFailBothSides) {
  auto g = MakeGroup(std::chrono::seconds(20));
  ASSERT_TRUE(g);
  std::vector<uint8_t> a(100), b(100), c(200);
  auto s = Recorder::Make(), r = Recorder::Make();
  (*g)[0].Send(1, 1, {View(a), View(b)}, Recorder::Callback(s));
  (*g)[1].Recv(0, 1, {View(c)}, Recorder::Callback(r));
  EXPECT_EQ(r->Wait().code(), StatusCode::kInvalidArgument) << r->Wait();
  Status sent = s->Wait();
  EXPECT_FALSE(sent.ok());
  EXPECT_NE(sent.code(), StatusCode::kDeadlineExceeded) << sent;
}

TEST_P(TransportConformanceTest, BadPeerFailsOnlyThatCall) {
  auto g = MakeGroup();
  ASSERT_TRUE(g);
  std::vector<uint8_t> buf(8, 1), dst(8);
  for (int peer : {-1, 0, 2}) {
    auto bad = Recorder::Make();
    (*g)[0].Send(peer, 1, {View(buf)}, Recorder::Callback(bad));
    EXPECT_EQ(bad->Wait().code(), StatusCode::kInvalidArgument) << "peer " << peer;
  }
  auto s = Recorder::Make(), r = Recorder::Make();
  (*g)[0].Send(1, 2, {View(buf)}, Recorder::Callback(s));
  (*g)[1].Recv(0, 2, {View(dst)}, Recorder::Callback(r));
  EXPECT_TRUE(s->Wait().ok()) << s->Wait();
  EXPECT_TRUE(r->Wait().ok()) << r->Wait();
  EXPECT_EQ(dst, buf);
}

INSTANTIATE_TEST_SUITE_P(Backends, TransportConformanceTest,
                         ::testing::Values("fake"
#if FERRY_HAVE_GLOO
                                           ,
                                           "gloo"
#endif
                                           ),
                         [](const auto& info) { return info.param; });

// Fake-only: the failure-injection hook that core protocol tests use.
TEST(FakeTransportTest, FailNextTransferFailsOneCallAndAbortsItsRank) {
  FakeTransportGroup group(2);
  auto t0 = group.Transport(0), t1 = group.Transport(1);
  group.FailNextTransfer(Status::Unavailable("injected"));
  std::vector<uint8_t> buf(4);
  auto first = Recorder::Make(), second = Recorder::Make(), peer = Recorder::Make();
  t0->Send(1, 1, {View(buf)}, Recorder::Callback(first));  // the next transfer: fails
  EXPECT_EQ(first->Wait(), Status::Unavailable("injected"));
  t1->Recv(0, 1, {View(buf)}, Recorder::Callback(peer));
  EXPECT_EQ(peer->Wait().code(), StatusCode::kAborted);  // its peer went away
  t0->Send(1, 2, {View(buf)}, Recorder::Callback(second));
  EXPECT_EQ(second->Wait(), Status::Unavailable("injected"));
}

TEST(FakeTransportTest, FailNextTransferWithoutAbortLeavesTheGroupUsable) {
  FakeTransportGroup group(2);
  auto t0 = group.Transport(0), t1 = group.Transport(1);
  group.FailNextTransfer(Status::DataLoss("flaky"), /*abort_rank=*/false);
  std::vector<uint8_t> src = {1, 2, 3}, dst(3);
  auto failed = Recorder::Make(), s = Recorder::Make(), r = Recorder::Make();
  t0->Send(1, 1, {View(src)}, Recorder::Callback(failed));
  EXPECT_EQ(failed->Wait().code(), StatusCode::kDataLoss);
  t0->Send(1, 2, {View(src)}, Recorder::Callback(s));
  t1->Recv(0, 2, {View(dst)}, Recorder::Callback(r));
  EXPECT_TRUE(s->Wait().ok());
  EXPECT_TRUE(r->Wait().ok());
  EXPECT_EQ(dst, src);
}

}  // namespace
}  // namespace ferry::transport
