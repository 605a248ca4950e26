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
// ExecuteAsync() is what the TaskReceiver calls: an implementation may
// return before the method finished and call `done` later, from any thread
// (an asyncio actor's event loop); by default it runs Execute() and calls
// `done` before returning.
//
// Thread contract: called concurrently from up to max_concurrency threads.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "ferry/object/readable_value.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/tensor/tensor.h"

namespace ferry::core {

// One resolved argument: its value and, for an RDT object, its tensors (the
// producer's own, or received copies that die with the task).
struct ExecArg {
  std::shared_ptr<object::ReadableValue> value;
  std::vector<tensor::Tensor> tensors;
};

class TaskExecutor {
 public:
  virtual ~TaskExecutor() = default;
  // `args[i]` is spec.args(i), resolved and opened for reading.
  virtual std::vector<proto::ObjectValueProto> Execute(const proto::TaskSpec& spec,
                                                       std::vector<ExecArg> args) = 0;

  using DoneFn = std::function<void(std::vector<proto::ObjectValueProto>)>;
  // `done` is called exactly once with the results Execute() would return.
  virtual void ExecuteAsync(const proto::TaskSpec& spec, std::vector<ExecArg> args, DoneFn done) {
    done(Execute(spec, std::move(args)));
  }
};

}  // namespace ferry::core
