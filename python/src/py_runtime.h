// ferry._core.Runtime: one process's ferry runtime as Python sees it — a
// CoreWorker, plus the embedded Head in a driver. Methods only convert
// types, map errors and release the GIL around anything that blocks.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>

#include "ferry/cluster/process_runtime.h"
#include "ferry/core/core_worker.h"
#include "py_ready.h"

namespace ferry::python {

class PyRuntime {
 public:
  static std::shared_ptr<PyRuntime> StartDriver(const cluster::DriverOptions& options);
  static std::shared_ptr<PyRuntime> StartWorker();
  ~PyRuntime();

  void Shutdown();
  const std::shared_ptr<core::CoreWorker>& core() const { return rt_.core; }
  cluster::Head* head() const { return rt_.head.get(); }
  cluster::DriverRuntime& driver() { return rt_; }
  ReadyNotifier& ready() const { return *ready_; }

 private:
  PyRuntime() = default;
  cluster::DriverRuntime rt_;  // a worker's has no head
  std::shared_ptr<ReadyNotifier> ready_ = std::make_shared<ReadyNotifier>();
};

void RegisterRuntime(pybind11::module_& m);

}  // namespace ferry::python
