#include "ferry/core/blocked_task_notifier.h"

#include "ferry/core/task_receiver.h"

namespace ferry::core {

size_t BlockedTaskNotifier::Wait(ValueGather& gather, size_t want, Deadline deadline) {
  const std::string& lease = TaskReceiver::CurrentLease();
  if (lease.empty() || gather.NumReady() >= want) return gather.WaitFor(want, deadline);
  const std::string held = lease;
  Notify(held, true);
  size_t ready = gather.WaitFor(want, deadline);
  Notify(held, false);
  return ready;
}

void BlockedTaskNotifier::Notify(const std::string& lease, bool blocked) {
  auto head = head_();
  if (!head.ok()) return;  // the Head is gone: nothing to give back to
  proto::LeaseBlocked msg;
  msg.set_lease_id(lease);
  msg.set_blocked(blocked);
  (*head)->Notify(proto::LEASE_BLOCKED, msg);
}

}  // namespace ferry::core
