// ArgumentResolver: finds the value behind an ObjectRef, wherever it is.
//
// The owner may be this process (the value is, or will be, in its memory
// store) or another one (asked with GET_OBJECT). `done` fires exactly once,
// on any thread, with the value — or with an error value (owner gone, object
// freed) — and never while the resolver holds a lock. Implemented by
// CoreWorker; a fake in tests.
#pragma once

#include <functional>
#include <memory>

#include "ferry/proto/ferry.pb.h"

namespace ferry::core {

using ValuePtr = std::shared_ptr<const proto::ObjectValueProto>;

class ArgumentResolver {
 public:
  virtual ~ArgumentResolver() = default;
  virtual void Resolve(const proto::ObjectRefProto& ref, std::function<void(ValuePtr)> done) = 0;
};

}  // namespace ferry::core
