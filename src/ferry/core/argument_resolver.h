// ArgumentResolver: finds the value behind a task argument, wherever it is.
//
// Resolve(): the owner of a ref may be this process (the value is, or will
// be, in its memory store) or another one (asked with GET_OBJECT).
// ResolveTensors(): an RDT argument's tensors come from this process's tensor
// store (it produced them) or from a receive posted on a collective group.
// `done` fires exactly once, on any thread, never while the resolver holds a
// lock; failures arrive as error values / non-OK statuses. Implemented by
// CoreWorker; a fake in tests.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "ferry/proto/ferry.pb.h"
#include "ferry/tensor/tensor.h"

namespace ferry::core {

using ValuePtr = std::shared_ptr<const proto::ObjectValueProto>;

class ArgumentResolver {
 public:
  virtual ~ArgumentResolver() = default;
  virtual void Resolve(const proto::ObjectRefProto& ref, std::function<void(ValuePtr)> done) = 0;
  // `arg` is the task argument and `value` its (RDT) value.
  virtual void ResolveTensors(const proto::TaskArg& arg, const ValuePtr& value,
                              std::function<void(StatusOr<std::vector<tensor::Tensor>>)> done) = 0;
};

}  // namespace ferry::core
