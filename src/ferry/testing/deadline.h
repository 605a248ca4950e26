// Deadlines for tests: the one bound a test puts on a wait that should end
// almost at once (Soon), and waiting for a condition that another thread or
// process makes true (WaitUntil), re-checked until it holds or the deadline
// passes. Tests wait on conditions, never on sleeps; the deadline only turns
// a hang into a failure.
//
// THREAD CONTRACT: stateless; thread-safe. WaitUntil calls `pred` from the
// calling thread only.
//
//   ASSERT_TRUE(producer->Command("free 0").ok());
//   EXPECT_TRUE(WaitUntil([&] { return shm.GetStats().cached_mappings == 1; }))
//       << "the freed block's mapping goes";
//   auto got = store.Get(ids, Soon());
#pragma once

#include <sched.h>

#include <chrono>

#include "ferry/common/clock.h"

namespace ferry::testing {

// How long a test waits for something that takes milliseconds when all is
// well: long enough for a loaded CI host under a sanitizer, short enough
// that a hang fails the test well before ctest's own timeout.
inline constexpr std::chrono::seconds kSoon{30};

inline Deadline Soon() { return Deadline::After(kSoon); }

// Polls `pred` (yielding the CPU between checks) until it returns true, then
// returns true; returns false if it still does not hold once `deadline` has
// passed. `pred` is checked at least once, even with an expired deadline.
template <typename Pred>
bool WaitUntil(Pred pred, Deadline deadline = Soon()) {
  while (true) {
    if (pred()) return true;
    if (deadline.Expired()) return pred();
    sched_yield();
  }
}

}  // namespace ferry::testing
