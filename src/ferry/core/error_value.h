// Values that carry a failure instead of data.
//
// A failed task's returns, a dead actor's pending results and a lost object
// are all ordinary values whose `error` field is non-OK, so they travel and
// wait like any other value. `format` says how to read `data` (for a user
// exception the language serializes the exception object there).
#pragma once

#include <string_view>

#include "ferry/proto/ferry.pb.h"
#include "ferry/status.h"

namespace ferry::core {

// A value holding `status` and optional serialized payload (e.g. a pickled
// exception, format "pickle5").
proto::ObjectValueProto MakeErrorValue(const Status& status, std::string_view format = "",
                                       std::string_view data = "");

// OK when `value` holds data; otherwise the error it carries.
Status ValueStatus(const proto::ObjectValueProto& value);

proto::StatusProto ToProto(const Status& status);
Status FromProto(const proto::StatusProto& status);

}  // namespace ferry::core
