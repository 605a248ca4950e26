#include "ferry/core/transfer_log.h"

namespace ferry::core {

void TransferLog::Add(TransferRecord record) {
  if (record.end_time == std::chrono::system_clock::time_point{}) {
    record.end_time = std::chrono::system_clock::now();
  }
  MutexLock lock(mu_);
  ++total_;
  if (capacity_ == 0) return;
  if (records_.size() == capacity_) records_.pop_front();
  records_.push_back(std::move(record));
}

std::vector<TransferRecord> TransferLog::Recent() const {
  MutexLock lock(mu_);
  return {records_.begin(), records_.end()};
}

uint64_t TransferLog::total() const {
  MutexLock lock(mu_);
  return total_;
}

}  // namespace ferry::core
