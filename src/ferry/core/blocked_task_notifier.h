// BlockedTaskNotifier: a remote-function task that waits for objects (get,
// wait) gives its lease's resources back to its node while it waits, as in
// Ray: a task that submits tasks and waits for them would otherwise hold the
// CPUs they need, and recursive tasks would deadlock once every CPU is held
// by a waiting parent.
//
// Wait() is ValueGather::WaitFor plus, when the calling thread runs a lent
// task (TaskReceiver::CurrentLease) and the values are not all in already,
// LEASE_BLOCKED to the Head before waiting and after (the Head takes the
// resources again then, even if that oversubscribes the node for a while).
//
// Thread contract: thread-safe; Wait() blocks its caller (never the io
// thread).
#pragma once

#include <functional>
#include <memory>

#include "ferry/common/clock.h"
#include "ferry/core/value_gather.h"
#include "ferry/rpc/channel.h"

namespace ferry::core {

class BlockedTaskNotifier {
 public:
  using HeadFn = std::function<StatusOr<std::shared_ptr<rpc::Channel>>()>;
  explicit BlockedTaskNotifier(HeadFn head) : head_(std::move(head)) {}

  size_t Wait(ValueGather& gather, size_t want, Deadline deadline);

 private:
  void Notify(const std::string& lease, bool blocked);

  const HeadFn head_;
};

}  // namespace ferry::core
