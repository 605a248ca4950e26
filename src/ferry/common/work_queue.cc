#include "ferry/common/work_queue.h"

namespace ferry {

WorkQueue::WorkQueue(std::string name) : name_(std::move(name)), thread_([this] { Run(); }) {}

WorkQueue::~WorkQueue() {
  Close();
  Join();
}

bool WorkQueue::Post(std::function<void()> fn) {
  {
    MutexLock lock(mu_);
    if (closed_) return false;
    queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
  return true;
}

void WorkQueue::Close() {
  {
    MutexLock lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

void WorkQueue::Join() {
  if (thread_.joinable() && !InQueueThread()) thread_.join();
}

void WorkQueue::Run() {
  for (;;) {
    std::function<void()> fn;
    {
      MutexLock lock(mu_);
      cv_.wait(lock.native(), [&]() FERRY_REQUIRES(mu_) { return closed_ || !queue_.empty(); });
      if (queue_.empty()) return;  // closed and drained
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

}  // namespace ferry
