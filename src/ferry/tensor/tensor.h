// Tensor: the bytes of one framework tensor, plus what keeps them alive.
//
// The C++ layers (tensor store, transports) see a tensor as a contiguous byte
// buffer: data(), nbytes(), a device, and a keep-alive handle. Its dtype,
// shape and strides travel in meta() (a TensorMetaProto); C++ reads them only
// to describe the tensor to DLPack (FromDLPack without metadata,
// ToTypedDLPack). A Tensor is a value: copies are cheap and share the
// keep-alive and the metadata; the memory stays valid while any copy — or any
// DLManagedTensor exported with ToDLPack or ToTypedDLPack — is alive.
//
// Lifecycle: made by FromDLPack (takes a framework tensor, e.g. from
// torch.utils.dlpack.to_dlpack), Wrap (any buffer plus an owner) or
// AllocateCpu (a receive buffer from a CpuAllocator). When the last copy and
// the last export die, the owner is released: the DLPack deleter runs (exactly
// once), or the block returns to the allocator's pool.
//
// THREAD CONTRACT: a value type. Distinct copies may be used and destroyed on
// different threads concurrently; one Tensor object must not be mutated
// concurrently. Writing the bytes is the caller's business. The keep-alive's
// release (a DLPack deleter: possibly framework code) runs on whichever thread
// drops the last reference, so never drop one while holding a lock the
// framework might need.
//
//   FERRY_ASSIGN_OR_RETURN(Tensor t, Tensor::FromDLPack(managed, meta));
//   store.Put(object_id, {t});                  // shares the bytes, no copy
//   FERRY_ASSIGN_OR_RETURN(Tensor r, Tensor::AllocateCpu(meta, allocator));
//   transport.Recv(r.data(), r.nbytes());
//   DLManagedTensor* out = r.ToDLPack();        // bytes: torch.from_dlpack(out)
//   auto typed = r.ToTypedDLPack();             // r's dtype, shape and strides
#pragma once

#include <dlpack/dlpack.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/proto/ferry.pb.h"
#include "ferry/status.h"
#include "ferry/tensor/cpu_allocator.h"

namespace ferry::tensor {

// Parses a device string as languages write it: "" or "cpu" is the CPU;
// "cuda" is CUDA device 0; "cuda:N" is CUDA device N. InvalidArgument
// otherwise.
StatusOr<DLDevice> ParseDevice(std::string_view device);
// The inverse of ParseDevice for CPU and CUDA devices: "cpu" or "cuda:N".
StatusOr<std::string> DeviceString(DLDevice device);

class Tensor {
 public:
  // An empty tensor: no bytes, no owner.
  Tensor();

  // Takes ownership of `managed` in every case: on success its deleter runs
  // exactly once, when the last copy of the Tensor (and of every export) dies;
  // on error it runs before FromDLPack returns. Requires a compact row-major
  // CPU or CUDA tensor (strides null, or equal to the row-major ones; a
  // dimension of size 1 may have any stride) whose size — product of shape
  // times bits*lanes/8 — equals meta.nbytes. If meta.device is empty it is
  // filled from the DLPack device; otherwise they must agree. InvalidArgument
  // when any of this fails.
  static StatusOr<Tensor> FromDLPack(DLManagedTensor* managed, proto::TensorMetaProto meta);

  // Takes ownership of `managed` as above, and derives the metadata from the
  // DLPack tensor itself: the dtype name (dtype.h's table), shape, device and
  // size. A tensor that is not compact keeps its strides in the metadata and
  // the Tensor holds the span of storage they cover (from the first element
  // to the last; non-negative strides only). InvalidArgument for a dtype the
  // table lacks, a negative stride, a bad shape or a device other than CPU
  // and CUDA.
  static StatusOr<Tensor> FromDLPack(DLManagedTensor* managed);

  // Describes `nbytes` bytes at `data`, kept alive by `keep_alive` (which may
  // be null when the caller guarantees the lifetime). meta.nbytes is set to
  // `nbytes`. meta.device must parse with ParseDevice (checked: a bad one is a
  // programming error; validate untrusted strings with ParseDevice first).
  static Tensor Wrap(void* data, uint64_t nbytes, proto::TensorMetaProto meta,
                     std::shared_ptr<void> keep_alive);

  // A fresh receive buffer of meta.nbytes bytes from `alloc` (its contents are
  // undefined). InvalidArgument unless meta.device is the CPU;
  // ResourceExhausted when memory is short. `*pooled` as CpuAllocator::Allocate.
  static StatusOr<Tensor> AllocateCpu(proto::TensorMetaProto meta, CpuAllocator& alloc,
                                      bool* pooled = nullptr);

  void* data() const { return data_; }
  uint64_t nbytes() const { return nbytes_; }
  const proto::TensorMetaProto& meta() const { return *meta_; }
  DLDevice device() const { return device_; }
  // The owner of the bytes; the Tensor holds one reference.
  std::shared_ptr<void> keep_alive() const { return keep_alive_; }

  // True if `p` points into [data(), data() + nbytes()); for a zero-byte
  // tensor, true only if p == data() and data() is not null.
  bool Contains(const void* p) const;

  // Exports a NEW DLManagedTensor describing the bytes as a 1-D kDLUInt/8
  // tensor of nbytes() elements on device() (strides {1}, byte_offset 0).
  // It holds a reference to keep_alive(), released by its deleter, so the
  // memory outlives the consumer (e.g. torch.from_dlpack). The consumer calls
  // the deleter exactly once; languages reinterpret dtype and shape
  // themselves (torch: .view(dtype).reshape(shape)). Never null.
  DLManagedTensor* ToDLPack() const;

  // Exports a NEW DLManagedTensor with meta()'s dtype, shape and strides
  // (none: row-major) over data(), so that a framework imports it as the
  // tensor it describes with no reinterpretation. Ownership as ToDLPack.
  // InvalidArgument when the dtype name has no DLPack type (dtype.h) or the
  // view the metadata describes does not fit in nbytes().
  StatusOr<DLManagedTensor*> ToTypedDLPack() const;

 private:
  DLManagedTensor* ExportDLPack(DLDataType dtype, std::vector<int64_t> shape,
                                std::vector<int64_t> strides) const;

  Tensor(void* data, uint64_t nbytes, DLDevice device, proto::TensorMetaProto meta,
         std::shared_ptr<void> keep_alive);
  // The Tensor over a validated DLPack tensor `t` of `nbytes` bytes, kept
  // alive by `owner` (FromDLPack's shared tail). InvalidArgument when bytes
  // are described but there is no data.
  static StatusOr<Tensor> Adopt(std::shared_ptr<void> owner, const DLTensor& t, uint64_t nbytes,
                                proto::TensorMetaProto meta);

  void* data_ = nullptr;
  uint64_t nbytes_ = 0;
  DLDevice device_{kDLCPU, 0};
  // Shared so copying a Tensor does not copy the proto; never mutated.
  std::shared_ptr<const proto::TensorMetaProto> meta_;
  std::shared_ptr<void> keep_alive_;
};

}  // namespace ferry::tensor
