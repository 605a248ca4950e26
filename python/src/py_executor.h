// PyExecutor: runs actor tasks by calling the Python function the worker
// registered (ferry._private.worker.execute). Converts resolved argument
// values to memoryviews and the function's results back to stored values.
//
// An asyncio actor (its creation task says is_asyncio) runs its method calls
// through `fn_async` instead: ExecuteAsync() hands the call to the actor's
// event loop and returns; the loop calls back with the results.
//
// Thread contract: Execute() may run on several executor threads at once;
// it takes the GIL for the Python parts and releases it while copying
// result bytes into shared memory. An asyncio actor's completions run on
// its event loop's thread, under the GIL.
#pragma once

#include <pybind11/pybind11.h>

#include <atomic>
#include <memory>

#include "ferry/core/core_worker.h"
#include "ferry/core/task_executor.h"

namespace ferry::python {

class PyExecutor : public core::TaskExecutor {
 public:
  PyExecutor(core::CoreWorker* core, pybind11::object fn, pybind11::object fn_async)
      : core_(core), fn_(std::move(fn)), fn_async_(std::move(fn_async)) {}
  ~PyExecutor() override;

  std::vector<proto::ObjectValueProto> Execute(const proto::TaskSpec& spec,
                                               std::vector<core::ExecArg> args) override;
  void ExecuteAsync(const proto::TaskSpec& spec, std::vector<core::ExecArg> args,
                    DoneFn done) override;

 private:
  // (args, arg ids, return ids) as the Python functions take them. GIL held.
  static pybind11::tuple CallArgsToPython(const proto::TaskSpec& spec,
                                          std::vector<core::ExecArg>& args);
  // The Python function's results, one stored value per return id. GIL held.
  template <class Ids>
  std::vector<proto::ObjectValueProto> StoreResults(const Ids& return_ids,
                                                    const pybind11::handle& results);
  // One result of the Python function: (format, data, buffers, code,
  // message[, (transport, [(capsule, dtype, shape, device, nbytes), ...])]).
  proto::ObjectValueProto StoreResult(const std::string& return_id, const pybind11::handle& result);
  // Moves an RDT result's tensors into the tensor store; fills value.rdt.
  Status StoreRdt(const ObjectId& id, const pybind11::handle& rdt, proto::ObjectValueProto* value);

  core::CoreWorker* const core_;
  pybind11::object fn_;
  pybind11::object fn_async_;
  std::atomic<bool> asyncio_{false};  // set by the creation task
};

}  // namespace ferry::python
