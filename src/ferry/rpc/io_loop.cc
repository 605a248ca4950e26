#include "ferry/rpc/io_loop.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"

namespace ferry::rpc {

// Keeps io_context::run() from returning while the loop has nothing to do.
struct IoLoop::WorkGuard {
  explicit WorkGuard(asio::io_context& ctx) : guard(asio::make_work_guard(ctx)) {}
  asio::executor_work_guard<asio::io_context::executor_type> guard;
};

std::chrono::microseconds IoLoop::DefaultSpin() {
  static const std::chrono::microseconds spin(
      std::max<int64_t>(0, EnvInt("FERRY_IO_SPIN_US", 100)));
  return spin;
}

IoLoop::IoLoop(std::string name, std::chrono::microseconds spin)
    : name_(std::move(name)), spin_(spin), context_(std::make_unique<asio::io_context>(1)) {
  MutexLock lock(mu_);
  work_ = std::make_unique<WorkGuard>(*context_);
}

IoLoop::~IoLoop() {
  Stop();
  Join();
  // Destroying the context destroys queued handlers (and what they own, such
  // as Channels); they may touch the context's services, which is allowed
  // while the context shuts down.
  context_.reset();
}

void IoLoop::Start() {
  MutexLock lock(mu_);
  if (started_ || stopped_) return;
  started_ = true;
  running_.store(true, std::memory_order_release);
  thread_ = std::thread([this] {
    loop_thread_id_.store(std::this_thread::get_id());
    pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
    Run();
  });
}

void IoLoop::Run() {
  // Handlers do not throw (the library reports errors as Status); an
  // exception escaping one is a bug and terminates the process.
  if (spin_.count() <= 0) {
    context_->run();
    return;
  }
  const int64_t spin_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(spin_).count();
  NoteActivity();
  while (!context_->stopped()) {
    // poll() runs what is ready, reading the sockets with a zero-timeout
    // epoll_wait; it never blocks.
    if (context_->poll() > 0) {
      NoteActivity();
    } else if (NowNs() - last_activity_ns_.load(std::memory_order_relaxed) < spin_ns) {
      sched_yield();
    } else {
      context_->run_one();  // sleeps until the next event
      NoteActivity();
    }
  }
}

void IoLoop::Post(std::function<void()> fn) { asio::post(*context_, std::move(fn)); }

void IoLoop::Stop() {
  std::unique_ptr<WorkGuard> work;
  {
    MutexLock lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    running_.store(false, std::memory_order_release);
    work = std::move(work_);
  }
  work.reset();
  context_->stop();
}

void IoLoop::Join() {
  FERRY_CHECK(!InLoopThread()) << "IoLoop::Join() called on its own thread " << name_;
  std::thread thread;
  {
    MutexLock lock(mu_);
    thread = std::move(thread_);
  }
  if (thread.joinable()) thread.join();
}

}  // namespace ferry::rpc
