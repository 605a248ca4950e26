// Helpers shared by the rpc tests: waiting on conditions with deadlines
// (never sleeps), channel pairs over socketpair(2), and an echo service.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "ferry/common/clock.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/channel.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"

namespace ferry::rpc::testing {

inline constexpr uint16_t kEcho = 100;     // Hello -> Hello (same bytes)
inline constexpr uint16_t kFail = 101;     // -> error reply NotFound
inline constexpr uint16_t kHold = 102;     // Responder kept by the test
inline constexpr uint16_t kDrop = 103;     // Responder dropped
inline constexpr uint16_t kNotify = 104;   // one-way
inline constexpr uint16_t kUnknown = 999;  // no handler
inline constexpr auto kWait = std::chrono::seconds(20);

// Waits until `pred` holds (re-checked on every Notify) or the deadline.
class Waiter {
 public:
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  bool WaitFor(const std::function<bool()>& pred, Deadline deadline = Deadline::After(kWait)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, deadline.time_point(), pred);
  }
  std::mutex& mu() { return mu_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

inline proto::Hello Msg(std::string text) {
  proto::Hello m;
  m.set_worker_id(std::move(text));  // a bytes field: any payload
  return m;
}

inline std::string Text(std::string_view payload) {
  proto::Hello m;
  EXPECT_TRUE(m.ParseFromArray(payload.data(), static_cast<int>(payload.size())));
  return m.worker_id();
}

// Responders kept by kHold handlers, for the test to answer or drop.
struct HeldResponders {
  std::mutex mu;
  std::vector<Responder> held;
  Waiter* waiter = nullptr;
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return held.size();
  }
  std::vector<Responder> Take() {
    std::lock_guard<std::mutex> lock(mu);
    return std::move(held);
  }
};

// Echo/fail/hold/drop/notify handlers. `notified` counts one-way messages.
inline std::shared_ptr<Dispatcher> MakeTestDispatcher(std::shared_ptr<HeldResponders> held,
                                                      std::atomic<int>* notified = nullptr,
                                                      Waiter* waiter = nullptr) {
  auto d = std::make_shared<Dispatcher>();
  d->Register(kEcho, [](const std::shared_ptr<Channel>&, std::string_view payload, Responder r) {
    proto::Hello m;
    m.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
    r.Reply(m);
  });
  d->Register(kFail, [](const std::shared_ptr<Channel>&, std::string_view, Responder r) {
    r.ReplyError(Status::NotFound("no such thing"));
  });
  d->Register(kHold, [held](const std::shared_ptr<Channel>&, std::string_view, Responder r) {
    {
      std::lock_guard<std::mutex> lock(held->mu);
      held->held.push_back(std::move(r));
    }
    if (held->waiter) held->waiter->Notify();
  });
  d->Register(kDrop, [](const std::shared_ptr<Channel>&, std::string_view, Responder) {});
  d->Register(kNotify,
              [notified, waiter](const std::shared_ptr<Channel>&, std::string_view, Responder r) {
                EXPECT_FALSE(r.pending());
                if (notified) ++*notified;
                if (waiter) waiter->Notify();
              });
  return d;
}

struct ChannelPair {
  std::shared_ptr<Channel> a;
  std::shared_ptr<Channel> b;
};

inline ChannelPair MakePair(IoLoop& loop, std::shared_ptr<Dispatcher> da,
                            std::shared_ptr<Dispatcher> db, ChannelOptions options = {}) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  auto a = Channel::Adopt(loop, fds[0], std::move(da), "side-a", options);
  auto b = Channel::Adopt(loop, fds[1], std::move(db), "side-b", options);
  EXPECT_TRUE(a.ok() && b.ok());
  return {*a, *b};
}

}  // namespace ferry::rpc::testing
