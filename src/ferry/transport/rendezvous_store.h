// RendezvousStore: the key/value seam through which the members of a
// transport group find each other (each rank publishes its address under a
// key, then reads its peers'). The group's orchestrator chooses the store: an
// in-memory one for threads of one process (tests), a file-backed one for
// processes on one host, later one served by the owner over RPC.
//
// Lifecycle: the store outlives every transport created from it while that
// transport is being created; transports do not keep using it afterwards.
//
// THREAD CONTRACT: implementations are thread-safe; Get may block the calling
// thread, but never past its Deadline.
//
//   InMemoryRendezvousStore store;
//   FERRY_RETURN_IF_ERROR(store.Set("group/0/addr", my_address));
//   FERRY_ASSIGN_OR_RETURN(std::string peer,
//       store.Get("group/1/addr", Deadline::After(std::chrono::seconds(10))));
//   // peer now holds what rank 1 published.
#pragma once

#include <string>

#include "ferry/common/clock.h"
#include "ferry/status.h"

namespace ferry::transport {

class RendezvousStore {
 public:
  virtual ~RendezvousStore() = default;

  // Publishes `value` under `key`, replacing any earlier value.
  virtual Status Set(const std::string& key, const std::string& value) = 0;

  // Waits until `key` exists and returns its value; DeadlineExceeded once
  // `deadline` passes without it.
  virtual StatusOr<std::string> Get(const std::string& key, Deadline deadline) = 0;
};

}  // namespace ferry::transport
