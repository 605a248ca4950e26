// Test helpers for transports: a callback recorder that counts invocations and
// waits with a deadline, and a BufferView of a byte vector. Test-only; not
// part of a library (payload patterns are ferry/testing/pattern.h).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "ferry/transport/two_sided_transport.h"

namespace ferry::transport::testing {

// Records a TransferCallback's invocations. Share it by shared_ptr so that a
// late callback never touches a destroyed recorder.
class Recorder {
 public:
  static std::shared_ptr<Recorder> Make() { return std::make_shared<Recorder>(); }

  static TransferCallback Callback(const std::shared_ptr<Recorder>& r) {
    return [r](Status s) {
      std::lock_guard<std::mutex> lock(r->mu_);
      ++r->calls_;
      if (!r->status_) r->status_ = std::move(s);
      r->cv_.notify_all();
    };
  }

  // The first status, or a DeadlineExceeded naming the test's own wait.
  Status Wait(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return status_.has_value(); })) {
      return Status::DeadlineExceeded("test: callback did not fire in time");
    }
    return *status_;
  }
  bool fired() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_ > 0;
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int calls_ = 0;
  std::optional<Status> status_;
};

inline BufferView View(std::vector<uint8_t>& v) { return BufferView{v.data(), v.size()}; }

}  // namespace ferry::transport::testing
