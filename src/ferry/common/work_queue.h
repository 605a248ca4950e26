// WorkQueue: one thread that runs posted closures in order.
//
// Used for work that may block (connects, waits on other processes) and so
// must stay off the io thread. Thread-safe: Post() from any thread. Close()
// stops accepting work and lets queued closures run; Join() waits for the
// thread. The destructor does both, so it is safe in any state. A closure
// must not Join() its own queue.
//
//   WorkQueue q("resolver");
//   q.Post([] { DoBlockingThing(); });
//   q.Close();
//   q.Join();
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "ferry/common/thread_annotations.h"

namespace ferry {

class WorkQueue {
 public:
  explicit WorkQueue(std::string name);
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Returns false (and drops `fn`) after Close().
  bool Post(std::function<void()> fn);
  void Close();
  void Join();
  bool InQueueThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void Run();

  const std::string name_;
  Mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_ FERRY_GUARDED_BY(mu_);
  bool closed_ FERRY_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace ferry
