// ActorDirectory: what the owner's side of direct tensor transport needs to
// know about actors: whether one is known dead, and where a live one listens.
//
// A seam: CoreWorker answers from its submitter and the Head; unit tests
// answer from a table.
//
// THREAD CONTRACT: implementations are thread-safe. IsDead never blocks;
// Address and Host may block up to `deadline` (never call them on the io
// thread).
#pragma once

#include <string>

#include "ferry/common/clock.h"
#include "ferry/common/id.h"
#include "ferry/status.h"

namespace ferry::core::rdt {

class ActorDirectory {
 public:
  virtual ~ActorDirectory() = default;
  // True, with the reason in `cause`, when `actor` is known to be dead.
  virtual bool IsDead(const ActorId& actor, Status* cause) = 0;
  // The address of `actor` when it is alive. With `wait_until_started`, an
  // actor still starting is waited for. Unavailable (naming the cause) when
  // it is dead.
  virtual StatusOr<std::string> Address(const ActorId& actor, bool wait_until_started,
                                        Deadline deadline) = 0;
  // The host `actor` runs on (its HostId) once it has started; empty when
  // unknown.
  virtual StatusOr<std::string> Host(const ActorId& actor, Deadline deadline) = 0;
};

}  // namespace ferry::core::rdt
