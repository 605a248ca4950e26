// Tensors across the Python edge, through DLPack capsules (no copies):
// torch.utils.dlpack.to_dlpack(t) -> tensor::Tensor, and tensor::Tensor ->
// a capsule torch.utils.dlpack.from_dlpack() accepts. Call with the GIL held.
#pragma once

#include <pybind11/pybind11.h>

#include <optional>
#include <vector>

#include "ferry/proto/ferry.pb.h"
#include "ferry/tensor/tensor.h"

namespace ferry::python {

// Consumes a "dltensor" capsule (renamed "used_dltensor", as DLPack asks,
// also when it fails). With `meta`, the capsule holds bytes that `meta`
// describes; without, it is a typed (maybe strided) tensor, as
// torch.utils.dlpack.to_dlpack(t) makes it, and the metadata comes from it.
StatusOr<tensor::Tensor> TensorFromCapsule(const pybind11::handle& capsule,
                                           std::optional<proto::TensorMetaProto> meta);
// A fresh "dltensor" capsule over `t`'s bytes (1-D uint8); keeps `t` alive.
pybind11::object TensorToCapsule(const tensor::Tensor& t);
// [(capsule, dtype, shape, strides), ...] for the language to rebuild its
// tensors. A typed capsule (the tensor's own dtype, shape and strides) comes
// with dtype, shape and strides None; a bytes capsule (1-D uint8, for dtypes
// torch's DLPack lacks) with them set (strides empty: contiguous).
pybind11::list TensorsToPython(const std::vector<tensor::Tensor>& tensors);
// Metadata from Python values (strides may be None: contiguous).
proto::TensorMetaProto MetaFromPython(const pybind11::handle& dtype, const pybind11::handle& shape,
                                      const pybind11::handle& strides,
                                      const pybind11::handle& device,
                                      const pybind11::handle& nbytes);
// Tensors from what serialization.export_tensor makes, each capsule
// consumed: (capsule,) for a typed capsule, or (capsule, dtype, shape,
// strides, device, nbytes) for a bytes capsule and its metadata.
StatusOr<std::vector<tensor::Tensor>> TensorsFromPython(const pybind11::handle& exported);
// (transport, [(dtype, shape, device, nbytes, strides), ...]) of an RDT value.
pybind11::tuple RdtToPython(const proto::RdtInfo& rdt);

}  // namespace ferry::python
