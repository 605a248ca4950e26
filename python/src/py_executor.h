// PyExecutor: runs actor tasks by calling the Python function the worker
// registered (ferry._private.worker.execute). Converts resolved argument
// values to memoryviews and the function's results back to stored values.
//
// Thread contract: Execute() may run on several executor threads at once;
// it takes the GIL for the Python parts and releases it while copying
// result bytes into shared memory.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>

#include "ferry/core/core_worker.h"
#include "ferry/core/task_executor.h"

namespace ferry::python {

class PyExecutor : public core::TaskExecutor {
 public:
  PyExecutor(core::CoreWorker* core, pybind11::object fn) : core_(core), fn_(std::move(fn)) {}
  ~PyExecutor() override;

  std::vector<proto::ObjectValueProto> Execute(const proto::TaskSpec& spec,
                                               std::vector<core::ExecArg> args) override;

 private:
  // One result of the Python function: (format, data, buffers, code,
  // message[, (transport, [(capsule, dtype, shape, device, nbytes), ...])]).
  proto::ObjectValueProto StoreResult(const std::string& return_id, const pybind11::handle& result);
  // Moves an RDT result's tensors into the tensor store; fills value.rdt.
  Status StoreRdt(const ObjectId& id, const pybind11::handle& rdt, proto::ObjectValueProto* value);

  core::CoreWorker* const core_;
  pybind11::object fn_;
};

}  // namespace ferry::python
