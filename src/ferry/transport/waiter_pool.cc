#include "ferry/transport/waiter_pool.h"

#include <pthread.h>

namespace ferry::transport {

WaiterPool::WaiterPool(std::string name) : name_(std::move(name)) {}

WaiterPool::~WaiterPool() {
  std::vector<std::thread> threads;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
}

void WaiterPool::Submit(std::function<void()> task) {
  {
    MutexLock lock(mu_);
    tasks_.push_back(std::move(task));
    // Every queued task needs its own idle thread; start one when short.
    // While stopping, a task submitted by a task runs on a remaining thread.
    if (!stopping_ && static_cast<int>(tasks_.size()) > idle_) {
      threads_.emplace_back([this] { Run(); });
      pthread_setname_np(threads_.back().native_handle(), name_.substr(0, 15).c_str());
    }
  }
  cv_.notify_one();
}

int WaiterPool::thread_count() {
  MutexLock lock(mu_);
  return static_cast<int>(threads_.size());
}

void WaiterPool::Run() {
  MutexLock lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock.native(), [&]() FERRY_REQUIRES(mu_) { return stopping_ || !tasks_.empty(); });
    --idle_;
    if (tasks_.empty()) return;  // stopping, and nothing left to run
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.Unlock();
    task();
    task = nullptr;  // release captures before re-taking the lock
    lock.Lock();
  }
}

}  // namespace ferry::transport
