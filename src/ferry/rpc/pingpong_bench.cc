// rpc_pingpong_bench: round-trip time of a small synchronous call between two
// processes over a Unix socket, beside a raw-socket baseline from the same run.
//
//   rpc_pingpong_bench [iterations=20000]
//
// Rows:
//   raw socketpair        blocking write/read of 32 bytes, no framework (floor)
//   ferry CallSync        Channel::CallSync; the server replies inside its handler
//   ferry CallSync+defer  the server hands the Responder to a worker thread that
//                         replies (the shape of a real actor call)
//   ferry pipelined       async Calls, 256 in flight: throughput, not latency
// Buffers are warm (the first 10% of iterations are discarded).
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/channel.h"
#include "ferry/rpc/connect.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"
#include "ferry/rpc/server.h"
#include "ferry/testing/child_process.h"

namespace ferry::rpc {
namespace {

constexpr uint16_t kEcho = 200;
constexpr uint16_t kDeferredEcho = 201;
constexpr char kToken[] = "bench-token";

struct Stats {
  double p10, p50, p99;
};

Stats Summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[static_cast<size_t>(q * (us.size() - 1))]; };
  return {at(0.10), at(0.50), at(0.99)};
}

void PrintRow(const char* name, const Stats& s) {
  std::printf("%-22s %9.1f %9.1f %9.1f\n", name, s.p10, s.p50, s.p99);
}

// ------------------------------------------------------------- raw baseline

Stats RawPingPong(int iterations) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) std::abort();
  char buf[32] = {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    while (::read(fds[1], buf, sizeof(buf)) == sizeof(buf)) {
      if (::write(fds[1], buf, sizeof(buf)) != sizeof(buf)) break;
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::vector<double> us;
  for (int i = 0; i < iterations; ++i) {
    auto t0 = Clock::now();
    if (::write(fds[0], buf, sizeof(buf)) != sizeof(buf)) std::abort();
    if (::read(fds[0], buf, sizeof(buf)) != sizeof(buf)) std::abort();
    if (i >= iterations / 10) {
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  }
  ::close(fds[0]);
  ::waitpid(pid, nullptr, 0);
  return Summarize(std::move(us));
}

// ------------------------------------------------------------- ferry server

// Replies from a worker thread, like an actor's executor would.
class ReplyThread {
 public:
  ReplyThread() : thread_([this] { Run(); }) {}
  ~ReplyThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void Push(Responder r, proto::Hello reply) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.emplace_back(std::move(r), std::move(reply));
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      auto item = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      item.first.Reply(item.second);
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<Responder, proto::Hello>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

[[noreturn]] void ServeForever(const std::string& address, ferry::testing::MessageChannel& parent) {
  IoLoop loop("bench-server");
  loop.Start();
  ReplyThread replier;
  auto dispatcher = std::make_shared<Dispatcher>();
  dispatcher->Register(kEcho,
                       [](const std::shared_ptr<Channel>&, std::string_view payload, Responder r) {
                         proto::Hello m;
                         m.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
                         r.Reply(m);
                       });
  dispatcher->Register(kDeferredEcho, [&replier](const std::shared_ptr<Channel>&,
                                                 std::string_view payload, Responder r) {
    proto::Hello m;
    m.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
    replier.Push(std::move(r), std::move(m));
  });
  ServerOptions options;
  options.token = kToken;
  std::vector<std::shared_ptr<Channel>> channels;
  auto server = Server::Listen(loop, address, options, dispatcher,
                               [&](std::shared_ptr<Channel> ch) { channels.push_back(ch); });
  if (!server.ok()) {
    std::fprintf(stderr, "listen: %s\n", server.status().ToString().c_str());
    ::_exit(1);
  }
  if (!parent.Send({"ready"})) ::_exit(1);
  for (;;) ::pause();  // killed by the parent
}

Stats FerryPingPong(Channel& ch, uint16_t method, int iterations) {
  proto::Hello request;
  request.set_worker_id(std::string(32, 'p'));
  std::vector<double> us;
  for (int i = 0; i < iterations; ++i) {
    auto t0 = Clock::now();
    auto reply = ch.CallSync(method, request, Deadline::After(std::chrono::seconds(10)));
    if (!reply.ok()) {
      std::fprintf(stderr, "call failed: %s\n", reply.status().ToString().c_str());
      std::exit(1);
    }
    if (i >= iterations / 10) {
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  }
  return Summarize(std::move(us));
}

double FerryPipelined(Channel& ch, int calls, int window) {
  proto::Hello request;
  request.set_worker_id(std::string(32, 'p'));
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  int done = 0;
  auto t0 = Clock::now();
  for (int i = 0; i < calls; ++i) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight < window; });
      ++in_flight;
    }
    ch.Call(kEcho, request, [&](Status s, std::string_view) {
      if (!s.ok()) std::abort();
      std::lock_guard<std::mutex> lock(mu);
      --in_flight;
      ++done;
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done == calls; });
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return calls / s;
}

int Main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 20000;
  const Stats raw = RawPingPong(iterations);

  const std::string address = "unix:@ferry-pingpong-" + std::to_string(::getpid());
  // Forked before any thread exists in this process; killed when `server`
  // goes out of scope.
  ferry::testing::ChildProcess server(
      [&](ferry::testing::MessageChannel& parent) -> int { ServeForever(address, parent); });
  if (auto ready = server.channel().Receive(Deadline::After(std::chrono::seconds(10)));
      !ready.ok()) {
    std::fprintf(stderr, "server did not start: %s\n", ready.status().ToString().c_str());
    return 1;
  }

  IoLoop loop("bench-client");
  loop.Start();
  proto::Hello hello;
  hello.set_token(kToken);
  hello.set_pid(::getpid());
  auto ch = Connect(loop, address, hello, nullptr, Deadline::After(std::chrono::seconds(10)));
  if (!ch.ok()) {
    std::fprintf(stderr, "connect: %s\n", ch.status().ToString().c_str());
    return 1;
  }
  const Stats inline_reply = FerryPingPong(**ch, kEcho, iterations);
  const Stats deferred = FerryPingPong(**ch, kDeferredEcho, iterations);
  const double rate = FerryPipelined(**ch, iterations * 5, 256);

  std::printf("rpc ping-pong, %d iterations, 2 processes, Unix socket, 34-byte message\n",
              iterations);
  std::printf("%-22s %9s %9s %9s\n", "round trip (us)", "p10", "median", "p99");
  PrintRow("raw socketpair", raw);
  PrintRow("ferry CallSync", inline_reply);
  PrintRow("ferry CallSync+defer", deferred);
  std::printf("%-22s %9.0f calls/s (256 in flight)\n", "ferry pipelined", rate);

  (*ch)->Close();
  server.Kill();
  loop.Stop();
  loop.Join();
  return 0;
}

}  // namespace
}  // namespace ferry::rpc

int main(int argc, char** argv) { return ferry::rpc::Main(argc, argv); }
