// Optional adapter: at::Tensor (libtorch) in the C++ API.
//
// Include this header (and link libtorch) to use at::Tensor wherever a
// ferry::Tensor works: as a method parameter or result, inside vectors, maps
// and FERRY_SERIALIZE structs, with SetTensorTransport("gloo") keeping it in
// the producer. Conversion goes through DLPack without copying: the producer
// stores the torch tensor's own memory; a received tensor is a torch view of
// ferry's buffer, which stays alive as long as the torch tensor does.
// CPU tensors only (ferry::Tensor's limit); a non-contiguous tensor is made
// contiguous first (one copy).
//
// Thread contract: as at::Tensor's.
//
//   #include <ferry/torch.h>
//   class Model { public: at::Tensor Weights() { return torch_weights_; } ... };
//   at::Tensor w = ferry::ToTorch(*ferry::Get(ref_to_ferry_tensor));
#pragma once

#include <ATen/ATen.h>
#include <ATen/DLConvertor.h>

#include "ferry/serialize.h"
#include "ferry/tensor.h"

namespace ferry {

// A torch view of `t`'s bytes (no copy); it keeps them alive.
inline at::Tensor ToTorch(const Tensor& t) { return at::fromDLPack(t.ToDLPack()); }

// A ferry::Tensor sharing `t`'s memory (no copy unless `t` is not contiguous).
inline Tensor FromTorch(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return Tensor::FromDLPack(at::toDLPack(c));
}

}  // namespace ferry

namespace at {

// cereal finds these by argument-dependent lookup.
template <class Archive>
void save(Archive& ar, const Tensor& t) {
  ar(::ferry::FromTorch(t));
}
template <class Archive>
void load(Archive& ar, Tensor& t) {
  ::ferry::Tensor f;
  ar(f);
  t = ::ferry::ToTorch(f);
}

}  // namespace at
