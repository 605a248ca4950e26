// ferry._core.ObjectRef: the Python handle of a core::ObjectRef. Each live
// handle holds one local reference in the CoreWorker that made it; dropping
// the handle (GC, `del`) releases it. Holds a weak pointer, so handles that
// outlive ferry.shutdown() are harmless.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>

#include "ferry/core/core_worker.h"

namespace ferry::python {

class PyObjectRef {
 public:
  PyObjectRef(core::ObjectRef ref, std::weak_ptr<core::CoreWorker> core,
              std::string tensor_transport = {})
      : ref_(std::move(ref)), core_(std::move(core)), transport_(std::move(tensor_transport)) {}
  ~PyObjectRef() {
    if (auto c = core_.lock()) c->RemoveLocalRef(ref_);
  }
  PyObjectRef(const PyObjectRef&) = delete;
  PyObjectRef& operator=(const PyObjectRef&) = delete;

  const core::ObjectRef& ref() const { return ref_; }
  std::shared_ptr<core::CoreWorker> core() const { return core_.lock(); }
  // The transport of the call that made it ("" or "object_store": none).
  const std::string& tensor_transport() const { return transport_; }

 private:
  core::ObjectRef ref_;
  std::weak_ptr<core::CoreWorker> core_;
  std::string transport_;
};

// Wraps `ref`, which must already be counted once for this handle.
pybind11::object WrapRef(core::ObjectRef ref, const std::shared_ptr<core::CoreWorker>& core,
                         std::string tensor_transport = {});
// Extracts refs from a Python sequence of ObjectRef (TypeError otherwise).
std::vector<core::ObjectRef> RefsFromPython(const pybind11::handle& seq);

void RegisterObjectRef(pybind11::module_& m);

}  // namespace ferry::python
