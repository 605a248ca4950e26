#include "ferry/rpc/channel.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"
#include "ferry/rpc/test_util.h"

namespace ferry::rpc {
namespace {

using namespace testing;  // NOLINT: test helpers

class ChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_.Start();
    held_ = std::make_shared<HeldResponders>();
    held_->waiter = &waiter_;
    auto pair = MakePair(loop_, MakeTestDispatcher(held_, &notified_, &waiter_),
                         MakeTestDispatcher(held_, &notified_, &waiter_));
    client_ = pair.a;
    server_ = pair.b;
  }
  void TearDown() override {
    held_->Take();  // answer (with Internal) anything still held
    client_->Close();
    server_->Close();
    Waiter done;
    std::atomic<bool> drained{false};
    loop_.Post([&] {
      drained = true;
      done.Notify();
    });
    done.WaitFor([&] { return drained.load(); });
    loop_.Stop();
    loop_.Join();
  }

  IoLoop loop_{"chan-test"};
  Waiter waiter_;
  std::atomic<int> notified_{0};
  std::shared_ptr<HeldResponders> held_;
  std::shared_ptr<Channel> client_;
  std::shared_ptr<Channel> server_;
};

TEST_F(ChannelTest, RequestReply) {
  auto reply = client_->CallSync(kEcho, Msg("ping"), Deadline::After(kWait));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(Text(*reply), "ping");
}

TEST_F(ChannelTest, CallbackRunsOnceOnTheIoThread) {
  std::atomic<int> calls{0};
  std::atomic<bool> on_io{false};
  std::string got;
  client_->Call(kEcho, Msg("async"), [&](Status s, std::string_view payload) {
    EXPECT_TRUE(s.ok()) << s;
    on_io = loop_.InLoopThread();
    got = Text(payload);
    ++calls;
    waiter_.Notify();
  });
  ASSERT_TRUE(waiter_.WaitFor([&] { return calls.load() == 1; }));
  EXPECT_TRUE(on_io);
  EXPECT_EQ(got, "async");
}

TEST_F(ChannelTest, TryCallSendsOnAnOpenChannelAndDropsTheCallbackOnAClosedOne) {
  std::atomic<int> calls{0};
  ASSERT_TRUE(client_->TryCall(kEcho, Msg("open"), [&](Status s, std::string_view) {
    EXPECT_TRUE(s.ok()) << s;
    ++calls;
    waiter_.Notify();
  }));
  ASSERT_TRUE(waiter_.WaitFor([&] { return calls.load() == 1; }));
  client_->Close();
  bool fired = false;
  EXPECT_FALSE(client_->TryCall(kEcho, Msg("closed"), [&](Status, std::string_view) {
    fired = true;
  })) << "a closed channel sends nothing";
  // A Call after it is still answered (with the error), on the io thread,
  // after anything posted before: once that ran, a posted callback would have.
  std::atomic<bool> failed{false};
  client_->Call(kEcho, Msg("closed"), [&](Status s, std::string_view) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
    failed = true;
    waiter_.Notify();
  });
  ASSERT_TRUE(waiter_.WaitFor([&] { return failed.load(); }));
  EXPECT_FALSE(fired) << "TryCall's callback is dropped, never fired";
}

TEST_F(ChannelTest, ErrorReplyCarriesTheRemoteStatus) {
  auto reply = client_->CallSync(kFail, Msg(""), Deadline::After(kWait));
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(reply.status().message(), "no such thing");
}

TEST_F(ChannelTest, UnknownMethodIsUnimplemented) {
  auto reply = client_->CallSync(kUnknown, Msg(""), Deadline::After(kWait));
  EXPECT_EQ(reply.status().code(), StatusCode::kUnimplemented);
}

TEST_F(ChannelTest, BothEndsServeRequests) {
  auto a = client_->CallSync(kEcho, Msg("to-b"), Deadline::After(kWait));
  auto b = server_->CallSync(kEcho, Msg("to-a"), Deadline::After(kWait));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Text(*a), "to-b");
  EXPECT_EQ(Text(*b), "to-a");
}

TEST_F(ChannelTest, TenThousandPipelinedCallsCompleteInOrder) {
  constexpr int kCalls = 10000;
  std::vector<int> completed;
  completed.reserve(kCalls);
  std::atomic<int> done{0};
  std::atomic<int> bad{0};
  for (int i = 0; i < kCalls; ++i) {
    client_->Call(kEcho, Msg(std::to_string(i)), [&, i](Status s, std::string_view payload) {
      if (!s.ok() || Text(payload) != std::to_string(i)) ++bad;
      completed.push_back(i);  // io thread only
      if (++done == kCalls) waiter_.Notify();
    });
  }
  ASSERT_TRUE(waiter_.WaitFor([&] { return done.load() == kCalls; }));
  EXPECT_EQ(bad.load(), 0);
  ASSERT_EQ(completed.size(), static_cast<size_t>(kCalls));
  for (int i = 0; i < kCalls; ++i) ASSERT_EQ(completed[i], i);
}

TEST_F(ChannelTest, ConcurrentCallersFromFourThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::atomic<int> bad{0};
  std::atomic<int> async_done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string text = std::to_string(t) + "/" + std::to_string(i);
        if (i % 2 == 0) {
          auto r = client_->CallSync(kEcho, Msg(text), Deadline::After(kWait));
          if (!r.ok() || Text(*r) != text) ++bad;
        } else {
          client_->Call(kEcho, Msg(text), [&, text](Status s, std::string_view payload) {
            if (!s.ok() || Text(payload) != text) ++bad;
            ++async_done;
            waiter_.Notify();
          });
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(waiter_.WaitFor([&] { return async_done.load() == kThreads * kPerThread / 2; }));
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(ChannelTest, DeferredReplyFromAnotherThread) {
  std::atomic<bool> replied{false};
  std::string got;
  Status status = Status::Internal("unset");
  client_->Call(kHold, Msg("later"), [&](Status s, std::string_view payload) {
    status = s;
    if (s.ok()) got = Text(payload);
    replied = true;
    waiter_.Notify();
  });
  ASSERT_TRUE(waiter_.WaitFor([&] { return held_->size() == 1; }));
  EXPECT_FALSE(replied.load());
  std::vector<Responder> responders = held_->Take();
  std::thread replier([r = std::move(responders[0])]() mutable {
    EXPECT_TRUE(r.pending());
    r.Reply(Msg("ready now"));
    EXPECT_FALSE(r.pending());
    r.Reply(Msg("twice"));  // a second reply is a no-op
  });
  replier.join();
  ASSERT_TRUE(waiter_.WaitFor([&] { return replied.load(); }));
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(got, "ready now");
}

TEST_F(ChannelTest, DroppedResponderSendsInternalError) {
  auto reply = client_->CallSync(kDrop, Msg(""), Deadline::After(kWait));
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kInternal);
  EXPECT_NE(reply.status().message().find("without a reply"), std::string::npos);
}

TEST_F(ChannelTest, OneWayMessagesArrive) {
  for (int i = 0; i < 10; ++i) client_->Notify(kNotify, Msg("x"));
  ASSERT_TRUE(waiter_.WaitFor([&] { return notified_.load() == 10; }));
  client_->Notify(kUnknown, Msg("dropped"));  // logged, no reply, no harm
  EXPECT_TRUE(client_->CallSync(kEcho, Msg("still fine"), Deadline::After(kWait)).ok());
}

TEST_F(ChannelTest, CallSyncTimesOutAndLateReplyIsDropped) {
  auto reply = client_->CallSync(kHold, Msg(""), Deadline::After(std::chrono::milliseconds(50)));
  EXPECT_EQ(reply.status().code(), StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(waiter_.WaitFor([&] { return held_->size() == 1; }));
  held_->Take()[0].Reply(Msg("too late"));
  EXPECT_TRUE(client_->CallSync(kEcho, Msg("next"), Deadline::After(kWait)).ok());
}

TEST_F(ChannelTest, PeerCloseFailsEveryPendingCallOnceAndFiresCloseCallbackOnce) {
  constexpr int kPending = 50;
  std::atomic<int> fired{0};
  std::atomic<int> unavailable{0};
  std::atomic<int> client_closed{0};
  std::atomic<int> server_closed{0};
  Status client_why, server_why;
  client_->SetCloseCallback([&](Status why) {
    client_why = why;
    ++client_closed;
    waiter_.Notify();
  });
  server_->SetCloseCallback([&](Status why) {
    server_why = why;
    ++server_closed;
    waiter_.Notify();
  });
  for (int i = 0; i < kPending; ++i) {
    client_->Call(kHold, Msg(""), [&](Status s, std::string_view) {
      if (s.code() == StatusCode::kUnavailable && s.message().find("side-a") != std::string::npos) {
        ++unavailable;
      }
      ++fired;
      waiter_.Notify();
    });
  }
  ASSERT_TRUE(waiter_.WaitFor([&] { return held_->size() == kPending; }));
  server_->Close();
  EXPECT_TRUE(server_->IsClosed());
  ASSERT_TRUE(waiter_.WaitFor([&] {
    return fired.load() == kPending && client_closed.load() == 1 && server_closed.load() == 1;
  }));
  EXPECT_EQ(unavailable.load(), kPending);
  EXPECT_TRUE(client_->IsClosed());
  EXPECT_EQ(client_why.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(server_why.ok()) << server_why;  // closed locally
  // Replies from the held responders now go nowhere; calls fail fast.
  held_->Take();
  auto late = client_->CallSync(kEcho, Msg(""), Deadline::After(kWait));
  EXPECT_EQ(late.status().code(), StatusCode::kUnavailable);
  std::atomic<int> late_fired{0};
  client_->Call(kEcho, Msg(""), [&](Status s, std::string_view) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
    ++late_fired;
    waiter_.Notify();
  });
  ASSERT_TRUE(waiter_.WaitFor([&] { return late_fired.load() == 1; }));
  // A close callback set after the close still fires, once.
  std::atomic<int> after{0};
  client_->SetCloseCallback([&](Status) {
    ++after;
    waiter_.Notify();
  });
  ASSERT_TRUE(waiter_.WaitFor([&] { return after.load() == 1; }));
  EXPECT_EQ(fired.load(), kPending);
  EXPECT_EQ(client_closed.load(), 1);
  EXPECT_EQ(server_closed.load(), 1);
}

TEST_F(ChannelTest, LargePayloads) {
  for (size_t size : {size_t{1} << 20, size_t{64} << 20}) {
    std::string big(size, '\0');
    for (size_t i = 0; i < size; i += 4096) big[i] = static_cast<char>(i / 4096);
    big.back() = 'z';
    auto reply = client_->CallSync(kEcho, Msg(big), Deadline::After(std::chrono::seconds(60)));
    ASSERT_TRUE(reply.ok()) << size << ": " << reply.status();
    EXPECT_TRUE(Text(*reply) == big) << "payload of " << size << " bytes corrupted";
  }
}

TEST_F(ChannelTest, OversizeOutgoingCallFailsWithoutClosing) {
  IoLoop& loop = loop_;
  auto pair = MakePair(loop, nullptr, MakeTestDispatcher(held_), ChannelOptions{1024});
  auto r = pair.a->CallSync(kEcho, Msg(std::string(2000, 'a')), Deadline::After(kWait));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(pair.a->IsClosed());
  EXPECT_TRUE(pair.a->CallSync(kEcho, Msg("small"), Deadline::After(kWait)).ok());
  // A peer without a dispatcher answers requests with Unimplemented.
  EXPECT_EQ(pair.b->CallSync(kEcho, Msg(""), Deadline::After(kWait)).status().code(),
            StatusCode::kUnimplemented);
  pair.a->Close();
  pair.b->Close();
}

TEST(ChannelGarbageTest, MalformedStreamClosesTheChannel) {
  IoLoop loop;
  loop.Start();
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  auto channel = Channel::Adopt(loop, fds[0], nullptr, "garbage-peer");
  ASSERT_TRUE(channel.ok());
  Waiter waiter;
  std::atomic<bool> closed{false};
  Status why;
  (*channel)->SetCloseCallback([&](Status s) {
    why = s;
    closed = true;
    waiter.Notify();
  });
  std::string garbage(32, '\x7f');  // kind 0x7f: unknown
  ASSERT_EQ(::write(fds[1], garbage.data(), garbage.size()), 32);
  ASSERT_TRUE(waiter.WaitFor([&] { return closed.load(); }));
  EXPECT_EQ(why.code(), StatusCode::kInvalidArgument) << why;
  // The peer sees EOF.
  char c;
  EXPECT_EQ(::read(fds[1], &c, 1), 0);
  ::close(fds[1]);
  loop.Stop();
  loop.Join();
}

TEST(ChannelAdoptTest, RejectsNonSockets) {
  IoLoop loop;
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  auto channel = Channel::Adopt(loop, p[0], nullptr, "pipe");
  EXPECT_EQ(channel.status().code(), StatusCode::kInvalidArgument);
  ::close(p[1]);
}

}  // namespace
}  // namespace ferry::rpc
