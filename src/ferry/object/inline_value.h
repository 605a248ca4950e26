// InlineForAnotherHost: a value whose bytes sit in a shared-memory segment of
// this host, rewritten to carry them inline — the form in which it can cross
// to another host, where /proc/<pid>/fd of this host means nothing.
//
// Values already inline (or empty, or errors) come back unchanged. The copy
// is one read of the segment; frames bound a value to rpc's 1 GiB payload.
//
// Thread contract: a pure function; thread-safe.
//
//   if (requester_node != own_node) FERRY_ASSIGN_OR_RETURN(value, InlineForAnotherHost(value));
#pragma once

#include "ferry/proto/ferry.pb.h"
#include "ferry/status.h"

namespace ferry::object {

// Errors: ShmMapping::Open's (DataLoss when the segment's holder is gone).
StatusOr<proto::ObjectValueProto> InlineForAnotherHost(const proto::ObjectValueProto& value);

}  // namespace ferry::object
