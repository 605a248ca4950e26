// WaiterPool: threads that run blocking waits for a transport, one task per
// thread at a time, growing by one thread whenever every thread is busy, so
// that a transfer waiting on its peer never delays another (the rule of
// docs/architecture.md, "a transfer thread never blocks on one transfer while others wait").
// Threads are kept after their task for reuse; the pool's size is the peak
// number of concurrent tasks.
//
// Lifecycle: Submit tasks; the destructor runs every task already submitted
// and joins the threads. Tasks must therefore finish in bounded time.
//
// THREAD CONTRACT: thread-safe. Tasks run without any pool lock held.
//
//   WaiterPool pool("gloo-wait");
//   pool.Submit([op] { op->WaitAndComplete(); });
//   // ~WaiterPool() returns after the task has run.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "ferry/common/thread_annotations.h"

namespace ferry::transport {

class WaiterPool {
 public:
  explicit WaiterPool(std::string name);
  ~WaiterPool();
  WaiterPool(const WaiterPool&) = delete;
  WaiterPool& operator=(const WaiterPool&) = delete;

  void Submit(std::function<void()> task);

  // Threads started so far (for tests and metrics).
  int thread_count();

 private:
  void Run();

  const std::string name_;
  Mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_ FERRY_GUARDED_BY(mu_);
  int idle_ FERRY_GUARDED_BY(mu_) = 0;
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::transport
