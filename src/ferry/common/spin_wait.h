// SpinUntil: poll a condition for a short budget before a thread blocks.
//
// Why: on the VMs ferry runs on, waking a sleeping thread whose vCPU went idle
// costs tens of microseconds (a halted vCPU must be re-entered), more than a
// whole call's work. A thread that expects an answer within microseconds
// (a get waiting for a reply, an executor between back-to-back tasks) polls
// first, yielding the CPU on every round so runnable threads are not starved,
// and blocks only when the budget runs out.
//
// Budget: FERRY_SPIN_US (default 200 µs; 0 disables spinning). Thread-safe.
//
//   if (!SpinUntil([&] { return ready.load(std::memory_order_acquire); })) {
//     cv.wait(lock, [&] { return ready.load(); });
//   }
#pragma once

#include <sched.h>

#include <chrono>

#include "ferry/common/config.h"

namespace ferry {

inline std::chrono::microseconds SpinBudget() {
  static const std::chrono::microseconds budget(EnvInt("FERRY_SPIN_US", 200));
  return budget;
}

template <typename Pred>
bool SpinUntil(Pred pred, std::chrono::microseconds budget = SpinBudget()) {
  if (pred()) return true;
  if (budget.count() <= 0) return false;
  const auto end = std::chrono::steady_clock::now() + budget;
  for (;;) {
    sched_yield();
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
  }
}

}  // namespace ferry
