// Deadlines on the steady clock. Every blocking wait in ferry takes one.
//
//   Deadline d = Deadline::After(std::chrono::seconds(5));
//   cv.wait_until(lock, d.time_point(), pred);
//   if (d.Expired()) return Status::DeadlineExceeded(...);
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace ferry {

using Clock = std::chrono::steady_clock;

// A duration from an untrusted millisecond count (a message field): clamped
// to [0, 30 days] so converting it can never overflow.
inline std::chrono::milliseconds ClampedMillis(int64_t ms) {
  constexpr int64_t kMax = int64_t{30} * 24 * 3600 * 1000;
  return std::chrono::milliseconds(ms < 0 ? 0 : (ms > kMax ? kMax : ms));
}

class Deadline {
 public:
  // A deadline that never expires.
  static Deadline Never() { return Deadline(Clock::time_point::max()); }
  static Deadline After(Clock::duration d) { return Deadline(Clock::now() + d); }
  // `timeout_s` < 0 or unset means never.
  static Deadline FromSeconds(std::optional<double> timeout_s) {
    if (!timeout_s || *timeout_s < 0) return Never();
    return After(
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*timeout_s)));
  }

  bool IsNever() const { return tp_ == Clock::time_point::max(); }
  bool Expired() const { return !IsNever() && Clock::now() >= tp_; }
  Clock::time_point time_point() const { return tp_; }
  Clock::duration Remaining() const {
    if (IsNever()) return Clock::duration::max();
    auto r = tp_ - Clock::now();
    return r < Clock::duration::zero() ? Clock::duration::zero() : r;
  }

 private:
  explicit Deadline(Clock::time_point tp) : tp_(tp) {}
  Clock::time_point tp_;
};

}  // namespace ferry
