// IoLoop: one asio::io_context and the ONE thread that runs it. Every socket
// of the control plane (Channel, Server, Connect) lives on an IoLoop; all their
// completion handlers and callbacks run on its thread, and user code never
// runs on it (docs/architecture.md, "Threads"). Other threads may write a
// frame straight to an idle channel (channel.h); reads, accepts and
// connects' completions are the loop's.
//
// Lifecycle: construct -> Start() -> ... -> Stop() -> Join(). Start, Stop and
// Join are idempotent; the destructor does Stop() + Join() and is safe in any
// state. Handlers still queued at Stop() never run (they are destroyed with
// the loop), so close channels and servers before stopping their loop. An
// IoLoop must outlive every Channel and Server made on it.
//
// Busy polling: after the loop handles an event, and after any thread sends
// on one of its channels (NoteActivity), the thread keeps polling the sockets
// without sleeping for `spin` (FERRY_IO_SPIN_US, default 100 µs; 0 = always
// sleep in epoll), yielding the CPU between polls, and only then blocks. On
// VMs a message that must wake a thread sleeping in epoll costs the sender an
// inter-processor interrupt and the receiver a vCPU wake-up, tens of
// microseconds each (docs/microbenchmarks.md has the figures); the reply to a
// call, or the next request of a conversation, usually comes well inside the
// budget. An idle process sleeps, and so does one that only waits long.
//
// THREAD CONTRACT: thread-safe (Start/Post/Stop/InLoopThread from any
// thread), except Join() and the destructor, which must not run on the loop
// thread (they would wait for themselves; FERRY_CHECK).
//
//   IoLoop loop("ferry-io");
//   loop.Start();
//   loop.Post([] { /* runs on the io thread */ });
//   loop.Stop();
//   loop.Join();
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "ferry/common/thread_annotations.h"

namespace asio {
class io_context;
}  // namespace asio

namespace ferry::rpc {

class IoLoop {
 public:
  // `name` becomes the thread's name (truncated to 15 characters by Linux).
  explicit IoLoop(std::string name = "ferry-io", std::chrono::microseconds spin = DefaultSpin());
  ~IoLoop();
  IoLoop(const IoLoop&) = delete;
  IoLoop& operator=(const IoLoop&) = delete;

  // Starts the thread. No-op if already started or stopped.
  void Start() FERRY_EXCLUDES(mu_);
  // Queues `fn` to run on the loop thread, in FIFO order with other posts.
  // Before Start() it waits for Start(); after Stop() it is dropped.
  void Post(std::function<void()> fn);
  // Asks the thread to exit after its current handler. Does not wait.
  void Stop() FERRY_EXCLUDES(mu_);
  // Waits for the thread to exit (call Stop() first, or this waits for
  // someone else to). No-op if never started or already joined.
  void Join() FERRY_EXCLUDES(mu_);

  // FERRY_IO_SPIN_US, or 100 µs.
  static std::chrono::microseconds DefaultSpin();

  // Something was just sent on one of this loop's sockets, so an answer may
  // come soon: a polling thread keeps polling for `spin` from now. Does not
  // wake a sleeping thread. Cheap (a clock read and a relaxed store).
  void NoteActivity() {
    if (spin_.count() > 0) last_activity_ns_.store(NowNs(), std::memory_order_relaxed);
  }

  // True between Start() and Stop(): posted work will run.
  bool Running() const { return running_.load(std::memory_order_acquire); }
  bool InLoopThread() const { return std::this_thread::get_id() == loop_thread_id_.load(); }
  // The io_context, for creating sockets and timers bound to this loop.
  asio::io_context& context() { return *context_; }

 private:
  struct WorkGuard;

  // The thread's body: run handlers, poll for `spin_` after the last
  // activity, then sleep.
  void Run();
  static int64_t NowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  const std::string name_;
  const std::chrono::microseconds spin_;
  // Own synchronization.
  std::unique_ptr<asio::io_context> context_;
  std::atomic<std::thread::id> loop_thread_id_{};
  std::atomic<bool> running_{false};
  // steady_clock ns of the last handled event or NoteActivity().
  std::atomic<int64_t> last_activity_ns_{0};

  Mutex mu_;
  std::unique_ptr<WorkGuard> work_ FERRY_GUARDED_BY(mu_);
  std::thread thread_ FERRY_GUARDED_BY(mu_);
  bool started_ FERRY_GUARDED_BY(mu_) = false;
  bool stopped_ FERRY_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::rpc
