#include "ferry/transport/in_memory_rendezvous_store.h"

namespace ferry::transport {

Status InMemoryRendezvousStore::Set(const std::string& key, const std::string& value) {
  {
    MutexLock lock(mu_);
    values_[key] = value;
  }
  cv_.notify_all();
  return Status::Ok();
}

StatusOr<std::string> InMemoryRendezvousStore::Get(const std::string& key, Deadline deadline) {
  MutexLock lock(mu_);
  auto present = [&]() FERRY_REQUIRES(mu_) { return values_.count(key) > 0; };
  if (deadline.IsNever()) {
    cv_.wait(lock.native(), present);
  } else if (!cv_.wait_until(lock.native(), deadline.time_point(), present)) {
    return Status::DeadlineExceeded("rendezvous key '" + key + "' was not set in time");
  }
  return values_.at(key);
}

}  // namespace ferry::transport
