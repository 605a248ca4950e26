// CppExecutor: runs C++ actor tasks in a worker (the C++ side of
// core::TaskExecutor; python/src/py_executor.cc is the Python one).
//
// A creation task names the registered factory in its argument structure;
// the executor builds the instance with it. A method task names the
// registered method (spec.method); the executor decodes the arguments — inline
// ones from the structure, ObjectRef ones from the values (and, for RDT, the
// tensors) the core resolved — calls the method and stores its result: in the
// object store, or, with a tensor transport, as an RDT value whose tensors
// stay in this process's tensor store. Any exception the user's code throws
// becomes a kTaskError value carrying "<method>: <type>: <what()>".
//
// Thread contract: Execute may run on several executor threads at once
// (max_concurrency); the instance is set once, by the creation task, which
// the core runs before any method.
#pragma once

#include <memory>
#include <mutex>
#include <typeindex>

#include "ferry/core/core_worker.h"
#include "ferry/core/task_executor.h"
#include "ferry/serialize.h"

namespace ferry::api {

class CppExecutor : public core::TaskExecutor {
 public:
  explicit CppExecutor(core::CoreWorker* core) : core_(core) {}

  std::vector<proto::ObjectValueProto> Execute(const proto::TaskSpec& spec,
                                               std::vector<core::ExecArg> args) override;

 private:
  // Stores one result; an RDT value when `transport` is a tensor transport
  // and the value holds tensors.
  proto::ObjectValueProto StoreResult(const std::string& return_id,
                                      const internal::EncodedValue& value,
                                      const std::string& transport);

  core::CoreWorker* const core_;
  std::mutex mu_;
  std::shared_ptr<void> instance_;      // guarded by mu_
  std::type_index cls_ = typeid(void);  // guarded by mu_
};

// The decode input of one resolved argument (shared with tests).
internal::DecodeInput InputOf(const core::ExecArg& arg);

}  // namespace ferry::api
