// Tensors across the Python edge, through DLPack capsules (no copies):
// torch.utils.dlpack.to_dlpack(t) -> tensor::Tensor, and tensor::Tensor ->
// a capsule torch.utils.dlpack.from_dlpack() accepts. Call with the GIL held.
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

#include "ferry/proto/ferry.pb.h"
#include "ferry/tensor/tensor.h"

namespace ferry::python {

// Consumes a "dltensor" capsule (renamed "used_dltensor", as DLPack asks).
StatusOr<tensor::Tensor> TensorFromCapsule(const pybind11::handle& capsule,
                                           proto::TensorMetaProto meta);
// A fresh "dltensor" capsule over `t`'s bytes (1-D uint8); keeps `t` alive.
pybind11::object TensorToCapsule(const tensor::Tensor& t);
// [(capsule, dtype, shape, strides), ...] for the language to rebuild its
// tensors (strides empty: contiguous).
pybind11::list TensorsToPython(const std::vector<tensor::Tensor>& tensors);
// Metadata from Python values (strides may be None: contiguous).
proto::TensorMetaProto MetaFromPython(const pybind11::handle& dtype, const pybind11::handle& shape,
                                      const pybind11::handle& strides, const pybind11::handle& device,
                                      const pybind11::handle& nbytes);
// Tensors from [(capsule, dtype, shape, strides, device, nbytes), ...], as
// serialization.export_tensor makes them (each capsule consumed).
StatusOr<std::vector<tensor::Tensor>> TensorsFromPython(const pybind11::handle& exported);
// (transport, [(dtype, shape, device, nbytes, strides), ...]) of an RDT value.
pybind11::tuple RdtToPython(const proto::RdtInfo& rdt);

}  // namespace ferry::python
