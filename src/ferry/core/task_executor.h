// TaskExecutor: the seam between the core and a language's user code.
//
// The worker's TaskReceiver calls Execute() on an executor thread once every
// argument is resolved; the implementation (Python in python/src, C++ in
// api/) runs the user's method and returns one value per return id of the
// spec, written through CoreWorker::WriteValue. A user exception is a value
// whose error is kTaskError, not a failed Execute. For a creation task
// (spec.is_creation) it builds the actor instance and returns nothing, or one
// error value if the constructor failed.
//
// Thread contract: called concurrently from up to max_concurrency threads.
#pragma once

#include <memory>
#include <vector>

#include "ferry/object/readable_value.h"
#include "ferry/proto/ferry.pb.h"

namespace ferry::core {

class TaskExecutor {
 public:
  virtual ~TaskExecutor() = default;
  // `args[i]` is the value of spec.args(i), opened for reading.
  virtual std::vector<proto::ObjectValueProto> Execute(
      const proto::TaskSpec& spec, std::vector<std::shared_ptr<object::ReadableValue>> args) = 0;
};

}  // namespace ferry::core
