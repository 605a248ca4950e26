// Timeline: what this process did and when, for `ferry timeline` (a Chrome
// trace / Perfetto file, one row per process): the tasks it ran, each with
// its phases (waiting for arguments, queued behind other tasks, running),
// and the calls it made (submitted, answered). Transfers come from the
// TransferLog beside it.
//
// It also counts, whatever its capacity, the tasks run (and failed) and the
// calls made since the process started (Prometheus counters).
//
// Recording is always on unless its capacity is 0 (FERRY_TIMELINE_SIZE):
// each finished task or call costs a few clock reads and one append to a
// ring under a lock; past `capacity` spans of a kind the oldest is dropped,
// so memory stays bounded. Times are wall-clock microseconds since the Unix
// epoch, so processes on one host line up (hosts as far as their clocks
// agree).
//
// THREAD CONTRACT: thread-safe; every method may be called from any thread.
//
//   Timeline timeline(10000);
//   TaskSpan span{.task_id = id, .method = "step", .arrived_us = Timeline::NowMicros()};
//   ...
//   timeline.AddTask(std::move(span));
//   for (const TaskSpan& t : timeline.Tasks()) { ... }
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"

namespace ferry::core {

// A task this process ran. Phases: [arrived, resolved) waiting for its
// arguments, [resolved, started) queued behind earlier tasks, [started,
// finished) running.
struct TaskSpan {
  TaskId task_id;
  std::string method;
  WorkerId caller;
  ObjectId first_return;  // what it produced (nil: none), for the data arrows
  int64_t arrived_us = 0;
  int64_t resolved_us = 0;
  int64_t started_us = 0;
  int64_t finished_us = 0;
};

// A call this process made: [submitted, replied).
struct CallSpan {
  TaskId task_id;
  std::string method;
  ActorId actor;
  int64_t submitted_us = 0;
  int64_t replied_us = 0;
};

class Timeline {
 public:
  explicit Timeline(size_t capacity) : capacity_(capacity) {}
  Timeline(const Timeline&) = delete;
  Timeline& operator=(const Timeline&) = delete;

  static int64_t NowMicros();
  bool enabled() const { return capacity_ != 0; }

  struct Totals {
    uint64_t tasks = 0;
    uint64_t task_failures = 0;
    uint64_t calls = 0;
  };
  void CountTask(bool failed) {
    num_tasks_.fetch_add(1, std::memory_order_relaxed);
    if (failed) num_task_failures_.fetch_add(1, std::memory_order_relaxed);
  }
  void CountCall() { num_calls_.fetch_add(1, std::memory_order_relaxed); }
  Totals totals() const {
    return {num_tasks_.load(std::memory_order_relaxed),
            num_task_failures_.load(std::memory_order_relaxed),
            num_calls_.load(std::memory_order_relaxed)};
  }

  void AddTask(TaskSpan span) FERRY_EXCLUDES(mu_);
  void AddCall(CallSpan span) FERRY_EXCLUDES(mu_);
  // Oldest first.
  std::vector<TaskSpan> Tasks() const FERRY_EXCLUDES(mu_);
  std::vector<CallSpan> Calls() const FERRY_EXCLUDES(mu_);
  // Spans dropped so far because the ring was full.
  uint64_t dropped() const FERRY_EXCLUDES(mu_);

 private:
  const size_t capacity_;
  std::atomic<uint64_t> num_tasks_{0};
  std::atomic<uint64_t> num_task_failures_{0};
  std::atomic<uint64_t> num_calls_{0};
  mutable Mutex mu_;
  std::deque<TaskSpan> tasks_ FERRY_GUARDED_BY(mu_);
  std::deque<CallSpan> calls_ FERRY_GUARDED_BY(mu_);
  uint64_t dropped_ FERRY_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry::core
