#include "ferry/core/transfer_log.h"

namespace ferry::core {

void TransferLog::Add(TransferRecord record) {
  if (record.end_time == std::chrono::system_clock::time_point{}) {
    record.end_time = std::chrono::system_clock::now();
  }
  MutexLock lock(mu_);
  ++total_;
  Totals& sum = sums_[{record.transport, record.direction}];
  sum.count++;
  sum.bytes += record.bytes;
  if (!record.error.empty()) sum.failures++;
  if (capacity_ == 0) return;
  if (records_.size() == capacity_) records_.pop_front();
  records_.push_back(std::move(record));
}

std::vector<TransferRecord> TransferLog::Recent() const {
  MutexLock lock(mu_);
  return {records_.begin(), records_.end()};
}

std::vector<TransferLog::Totals> TransferLog::Sums() const {
  MutexLock lock(mu_);
  std::vector<Totals> out;
  out.reserve(sums_.size());
  for (const auto& [key, sum] : sums_) {
    out.push_back(sum);
    out.back().transport = key.first;
    out.back().direction = key.second;
  }
  return out;
}

uint64_t TransferLog::total() const {
  MutexLock lock(mu_);
  return total_;
}

}  // namespace ferry::core
