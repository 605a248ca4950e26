#include "py_tensors.h"

#include <dlpack/dlpack.h>
#include <pybind11/stl.h>

namespace py = pybind11;

namespace ferry::python {

namespace {

// A "dltensor" capsule that owns `managed` until a framework consumes it.
py::object Capsule(DLManagedTensor* managed) {
  PyObject* cap = PyCapsule_New(managed, "dltensor", [](PyObject* self) {
    // Never consumed (torch renames what it takes): release it here.
    if (PyCapsule_IsValid(self, "dltensor")) {
      auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(self, "dltensor"));
      if (m != nullptr && m->deleter != nullptr) m->deleter(m);
    }
  });
  if (cap == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(cap);
}

// torch 1.13's DLPack has no bool type: bool tensors travel as bytes.
bool TypedCapsuleFits(const tensor::Tensor& t) { return t.meta().dtype() != "bool"; }

}  // namespace

StatusOr<tensor::Tensor> TensorFromCapsule(const py::handle& capsule,
                                           std::optional<proto::TensorMetaProto> meta) {
  if (!PyCapsule_IsValid(capsule.ptr(), "dltensor")) {
    return Status::InvalidArgument("expected an unused DLPack capsule");
  }
  auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  // FromDLPack owns `managed` from here on, even when it fails.
  PyCapsule_SetName(capsule.ptr(), "used_dltensor");
  return meta ? tensor::Tensor::FromDLPack(managed, std::move(*meta))
              : tensor::Tensor::FromDLPack(managed);
}

py::object TensorToCapsule(const tensor::Tensor& t) { return Capsule(t.ToDLPack()); }

py::list TensorsToPython(const std::vector<tensor::Tensor>& tensors) {
  py::list out;
  for (const auto& t : tensors) {
    if (TypedCapsuleFits(t)) {
      if (StatusOr<DLManagedTensor*> typed = t.ToTypedDLPack(); typed.ok()) {
        out.append(py::make_tuple(Capsule(*typed), py::none(), py::none(), py::none()));
        continue;
      }
    }
    py::list shape, strides;
    for (int64_t d : t.meta().shape()) shape.append(d);
    for (int64_t d : t.meta().strides()) strides.append(d);
    out.append(
        py::make_tuple(TensorToCapsule(t), t.meta().dtype(), py::tuple(shape), py::tuple(strides)));
  }
  return out;
}

proto::TensorMetaProto MetaFromPython(const py::handle& dtype, const py::handle& shape,
                                      const py::handle& strides, const py::handle& device,
                                      const py::handle& nbytes) {
  proto::TensorMetaProto meta;
  meta.set_dtype(dtype.cast<std::string>());
  for (py::handle d : shape) meta.add_shape(d.cast<int64_t>());
  if (!strides.is_none()) {
    for (py::handle d : strides) meta.add_strides(d.cast<int64_t>());
  }
  meta.set_device(device.cast<std::string>());
  meta.set_nbytes(nbytes.cast<uint64_t>());
  return meta;
}

StatusOr<std::vector<tensor::Tensor>> TensorsFromPython(const py::handle& exported) {
  std::vector<tensor::Tensor> tensors;
  for (py::handle item : exported) {
    auto t = item.cast<py::tuple>();
    if (t.size() == 1) {  // (capsule,): the capsule describes the tensor
      FERRY_ASSIGN_OR_RETURN(tensor::Tensor tensor, TensorFromCapsule(t[0], std::nullopt));
      tensors.push_back(std::move(tensor));
      continue;
    }
    // (capsule, dtype, shape, strides, device, nbytes): bytes plus metadata
    proto::TensorMetaProto meta = MetaFromPython(t[1], t[2], t[3], t[4], t[5]);
    FERRY_ASSIGN_OR_RETURN(tensor::Tensor tensor, TensorFromCapsule(t[0], std::move(meta)));
    tensors.push_back(std::move(tensor));
  }
  return tensors;
}

py::tuple RdtToPython(const proto::RdtInfo& rdt) {
  py::list metas;
  for (const auto& m : rdt.tensors()) {
    py::list shape, strides;
    for (int64_t d : m.shape()) shape.append(d);
    for (int64_t d : m.strides()) strides.append(d);
    metas.append(
        py::make_tuple(m.dtype(), py::tuple(shape), m.device(), m.nbytes(), py::tuple(strides)));
  }
  return py::make_tuple(rdt.transport(), metas);
}

}  // namespace ferry::python
