// Deterministic fault injection for tests: FERRY_FAULT names points in the
// code where this process fails on purpose, so failure tests need no timing
// luck. Unset (the default) costs one branch per point.
//
//   FERRY_FAULT="transfer.send:exit"           this process exits at that point
//   FERRY_FAULT="transfer.recv:error,task.return:exit"
//
// Actions: "exit" ends the process at once (_exit(77), like a SIGKILL: no
// cleanup), "error" makes the point fail with an Internal status. Points:
//   task.return     a worker computed a task's results and is about to reply
//   transfer.send   a producer is about to send an RDT object's tensors
//   transfer.recv   a receiver is about to post the receive of an RDT argument
//   transfer.fetch  a producer is about to answer FETCH_TENSORS
//   transfer.pull   a receiver is about to pull one-sided tensors (nixl, shm)
// Thread-safe (the setting is read once).
#pragma once

#include <string_view>

#include "ferry/status.h"

namespace ferry {

// OK, or (action "error") an Internal status naming the point; with action
// "exit" it does not return.
Status InjectFault(std::string_view point);

}  // namespace ferry
