#include "ferry/core/timeline.h"

#include <chrono>

namespace ferry::core {

int64_t Timeline::NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

template <typename Span>
void Append(std::deque<Span>& ring, Span span, size_t capacity, uint64_t* dropped) {
  if (capacity == 0) return;
  if (ring.size() == capacity) {
    ring.pop_front();
    ++*dropped;
  }
  ring.push_back(std::move(span));
}

}  // namespace

void Timeline::AddTask(TaskSpan span) {
  MutexLock lock(mu_);
  Append(tasks_, std::move(span), capacity_, &dropped_);
}

void Timeline::AddCall(CallSpan span) {
  MutexLock lock(mu_);
  Append(calls_, std::move(span), capacity_, &dropped_);
}

std::vector<TaskSpan> Timeline::Tasks() const {
  MutexLock lock(mu_);
  return {tasks_.begin(), tasks_.end()};
}

std::vector<CallSpan> Timeline::Calls() const {
  MutexLock lock(mu_);
  return {calls_.begin(), calls_.end()};
}

uint64_t Timeline::dropped() const {
  MutexLock lock(mu_);
  return dropped_;
}

}  // namespace ferry::core
