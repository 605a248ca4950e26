#include "ferry/tensor/tensor.h"

#include <charconv>
#include <utility>
#include <vector>

#include "ferry/common/logging.h"
#include "ferry/tensor/dtype.h"

namespace ferry::tensor {
namespace {

const std::shared_ptr<const proto::TensorMetaProto>& EmptyMeta() {
  static const auto* empty = new std::shared_ptr<const proto::TensorMetaProto>(
      std::make_shared<proto::TensorMetaProto>());
  return *empty;
}

// Releases a DLManagedTensor that FromDLPack took: calls its deleter once.
void DeleteManaged(DLManagedTensor* managed) {
  if (managed->deleter != nullptr) managed->deleter(managed);
}

// Owns `managed` from here on: its deleter runs when the last copy of the
// result dies.
std::shared_ptr<void> Own(DLManagedTensor* managed) {
  return std::shared_ptr<void>(managed,
                               [](void* m) { DeleteManaged(static_cast<DLManagedTensor*>(m)); });
}

// Element count of a shape; InvalidArgument for a negative extent or overflow.
StatusOr<uint64_t> Numel(const int64_t* shape, int ndim) {
  if (ndim < 0)
    return Status::InvalidArgument("DLPack tensor has negative ndim " + std::to_string(ndim));
  if (ndim > 0 && shape == nullptr)
    return Status::InvalidArgument("DLPack tensor has ndim > 0 but no shape");
  uint64_t numel = 1;
  for (int i = 0; i < ndim; ++i) {
    if (shape[i] < 0) {
      return Status::InvalidArgument("DLPack tensor has negative extent " +
                                     std::to_string(shape[i]) + " in dimension " +
                                     std::to_string(i));
    }
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(shape[i]), &numel)) {
      return Status::InvalidArgument("DLPack tensor's element count overflows 64 bits");
    }
  }
  return numel;
}

// Row-major compact: stride[i] == product of extents after i, except that a
// dimension of extent 1 may carry any stride (frameworks differ there). On
// failure, `*bad` is the first dimension that breaks it and `*expected` its
// row-major stride.
bool IsCompact(const int64_t* shape, const int64_t* strides, int ndim, int* bad = nullptr,
               int64_t* expected_out = nullptr) {
  if (strides == nullptr) return true;
  for (int i = 0; i < ndim; ++i) {
    if (shape[i] == 0) return true;  // no elements: any strides describe it
  }
  int64_t expected = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != expected) {
      if (bad != nullptr) *bad = i;
      if (expected_out != nullptr) *expected_out = expected;
      return false;
    }
    expected *= shape[i];
  }
  return true;
}

// Elements from the first to one past the last that a strided view reaches
// (0 for an empty view); InvalidArgument for a negative stride or overflow.
StatusOr<uint64_t> SpanElements(const int64_t* shape, const int64_t* strides, int ndim) {
  FERRY_ASSIGN_OR_RETURN(uint64_t numel, Numel(shape, ndim));
  if (strides == nullptr || numel == 0) return numel;
  uint64_t last = 0;
  for (int i = 0; i < ndim; ++i) {
    if (strides[i] < 0) {
      return Status::InvalidArgument("tensor has negative stride " + std::to_string(strides[i]) +
                                     " in dimension " + std::to_string(i));
    }
    uint64_t reach = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(shape[i] - 1),
                               static_cast<uint64_t>(strides[i]), &reach) ||
        __builtin_add_overflow(last, reach, &last)) {
      return Status::InvalidArgument("tensor's strided extent overflows 64 bits");
    }
  }
  return last + 1;
}

// Bytes of `elements` elements of `type`; InvalidArgument for overflow or a
// fraction of a byte.
StatusOr<uint64_t> ElementBytes(uint64_t elements, DLDataType type) {
  const uint64_t bits_per_element = uint64_t{type.bits} * type.lanes;
  uint64_t bits = 0;
  if (__builtin_mul_overflow(elements, bits_per_element, &bits)) {
    return Status::InvalidArgument("DLPack tensor's size in bits overflows 64 bits");
  }
  if (bits % 8 != 0) {
    return Status::InvalidArgument("DLPack tensor of " + std::to_string(elements) +
                                   " elements of " + std::to_string(bits_per_element) +
                                   " bits is not a whole number of bytes");
  }
  return bits / 8;
}

// Size in bytes of a compact tensor, or InvalidArgument.
StatusOr<uint64_t> CompactBytes(const DLTensor& t) {
  FERRY_ASSIGN_OR_RETURN(uint64_t numel, Numel(t.shape, t.ndim));
  int bad = 0;
  int64_t expected = 0;
  if (!IsCompact(t.shape, t.strides, t.ndim, &bad, &expected)) {
    return Status::InvalidArgument("DLPack tensor is not contiguous (stride " +
                                   std::to_string(t.strides[bad]) + " in dimension " +
                                   std::to_string(bad) + ", expected " + std::to_string(expected) +
                                   "); call .contiguous() before sending it");
  }
  return ElementBytes(numel, t.dtype);
}

// What ToDLPack hands out: the DLManagedTensor plus the storage its pointers
// refer to, and the reference that keeps the bytes alive.
struct Export {
  DLManagedTensor managed{};
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // empty: row-major
  std::shared_ptr<void> keep_alive;
};

void DeleteExport(DLManagedTensor* managed) { delete static_cast<Export*>(managed->manager_ctx); }

}  // namespace

StatusOr<DLDevice> ParseDevice(std::string_view device) {
  if (device.empty() || device == "cpu") return DLDevice{kDLCPU, 0};
  if (device == "cuda") return DLDevice{kDLCUDA, 0};
  constexpr std::string_view kCudaPrefix = "cuda:";
  if (device.starts_with(kCudaPrefix)) {
    const std::string_view index = device.substr(kCudaPrefix.size());
    int id = -1;
    auto [end, ec] = std::from_chars(index.data(), index.data() + index.size(), id);
    if (ec == std::errc() && end == index.data() + index.size() && !index.empty() && id >= 0) {
      return DLDevice{kDLCUDA, id};
    }
  }
  return Status::InvalidArgument("unknown tensor device \"" + std::string(device) +
                                 "\"; expected \"cpu\", \"cuda\" or \"cuda:N\"");
}

StatusOr<std::string> DeviceString(DLDevice device) {
  switch (device.device_type) {
    case kDLCPU: return std::string("cpu");
    case kDLCUDA: return "cuda:" + std::to_string(device.device_id);
    default:
      return Status::InvalidArgument("DLPack device type " + std::to_string(device.device_type) +
                                     " is not supported; only CPU and CUDA tensors can be sent");
  }
}

Tensor::Tensor() : meta_(EmptyMeta()) {}

Tensor::Tensor(void* data, uint64_t nbytes, DLDevice device, proto::TensorMetaProto meta,
               std::shared_ptr<void> keep_alive)
    : data_(data),
      nbytes_(nbytes),
      device_(device),
      meta_(std::make_shared<const proto::TensorMetaProto>(std::move(meta))),
      keep_alive_(std::move(keep_alive)) {}

StatusOr<Tensor> Tensor::FromDLPack(DLManagedTensor* managed, proto::TensorMetaProto meta) {
  if (managed == nullptr)
    return Status::InvalidArgument("Tensor::FromDLPack: managed tensor is null");
  // Own it from here on: the deleter runs when `owner`'s last copy dies,
  // including right now if validation fails.
  std::shared_ptr<void> owner = Own(managed);
  const DLTensor& t = managed->dl_tensor;

  FERRY_ASSIGN_OR_RETURN(std::string device, DeviceString(t.device));
  if (meta.device().empty()) {
    meta.set_device(device);
  } else {
    FERRY_ASSIGN_OR_RETURN(DLDevice named, ParseDevice(meta.device()));
    if (named.device_type != t.device.device_type || named.device_id != t.device.device_id) {
      return Status::InvalidArgument("tensor metadata names device \"" + meta.device() +
                                     "\" but the DLPack tensor is on " + device);
    }
  }
  FERRY_ASSIGN_OR_RETURN(uint64_t nbytes, CompactBytes(t));
  if (nbytes != meta.nbytes()) {
    return Status::InvalidArgument("DLPack tensor holds " + std::to_string(nbytes) +
                                   " bytes but its metadata says " + std::to_string(meta.nbytes()));
  }
  return Adopt(std::move(owner), t, nbytes, std::move(meta));
}

StatusOr<Tensor> Tensor::FromDLPack(DLManagedTensor* managed) {
  if (managed == nullptr)
    return Status::InvalidArgument("Tensor::FromDLPack: managed tensor is null");
  std::shared_ptr<void> owner = Own(managed);
  const DLTensor& t = managed->dl_tensor;
  proto::TensorMetaProto meta;
  std::optional<std::string_view> dtype = NameOfDLDataType(t.dtype);
  if (!dtype) {
    return Status::InvalidArgument(
        "DLPack dtype (code " + std::to_string(t.dtype.code) + ", " + std::to_string(t.dtype.bits) +
        " bits, " + std::to_string(t.dtype.lanes) + " lanes) has no ferry dtype name");
  }
  meta.set_dtype(std::string(*dtype));
  FERRY_ASSIGN_OR_RETURN(std::string device, DeviceString(t.device));
  meta.set_device(std::move(device));
  FERRY_ASSIGN_OR_RETURN(uint64_t numel, Numel(t.shape, t.ndim));
  for (int i = 0; i < t.ndim; ++i) meta.add_shape(t.shape[i]);
  uint64_t elements = numel;
  if (!IsCompact(t.shape, t.strides, t.ndim)) {
    // Strided: the tensor is the span of storage the strides cover.
    FERRY_ASSIGN_OR_RETURN(elements, SpanElements(t.shape, t.strides, t.ndim));
    for (int i = 0; i < t.ndim; ++i) meta.add_strides(t.strides[i]);
  }
  FERRY_ASSIGN_OR_RETURN(uint64_t nbytes, ElementBytes(elements, t.dtype));
  meta.set_nbytes(nbytes);
  return Adopt(std::move(owner), t, nbytes, std::move(meta));
}

StatusOr<Tensor> Tensor::Adopt(std::shared_ptr<void> owner, const DLTensor& t, uint64_t nbytes,
                               proto::TensorMetaProto meta) {
  if (t.data == nullptr && nbytes > 0) {
    return Status::InvalidArgument("DLPack tensor of " + std::to_string(nbytes) +
                                   " bytes has no data");
  }
  void* data = static_cast<char*>(t.data) + t.byte_offset;
  return Tensor(data, nbytes, t.device, std::move(meta), std::move(owner));
}

Tensor Tensor::Wrap(void* data, uint64_t nbytes, proto::TensorMetaProto meta,
                    std::shared_ptr<void> keep_alive) {
  StatusOr<DLDevice> device = ParseDevice(meta.device());
  FERRY_CHECK(device.ok()) << "Tensor::Wrap: " << device.status();
  meta.set_nbytes(nbytes);
  return Tensor(data, nbytes, *device, std::move(meta), std::move(keep_alive));
}

StatusOr<Tensor> Tensor::AllocateCpu(proto::TensorMetaProto meta, CpuAllocator& alloc,
                                     bool* pooled) {
  FERRY_ASSIGN_OR_RETURN(DLDevice device, ParseDevice(meta.device()));
  if (device.device_type != kDLCPU) {
    return Status::InvalidArgument("Tensor::AllocateCpu: tensor metadata names device \"" +
                                   meta.device() + "\", not the CPU");
  }
  void* data = nullptr;
  FERRY_ASSIGN_OR_RETURN(std::shared_ptr<void> block, alloc.Allocate(meta.nbytes(), &data, pooled));
  const uint64_t nbytes = meta.nbytes();
  return Tensor(data, nbytes, device, std::move(meta), std::move(block));
}

bool Tensor::Contains(const void* p) const {
  if (data_ == nullptr) return false;
  const auto begin = reinterpret_cast<uintptr_t>(data_);
  const auto q = reinterpret_cast<uintptr_t>(p);
  if (nbytes_ == 0) return q == begin;
  return q >= begin && q - begin < nbytes_;
}

DLManagedTensor* Tensor::ExportDLPack(DLDataType dtype, std::vector<int64_t> shape,
                                      std::vector<int64_t> strides) const {
  auto* e = new Export;
  e->shape = std::move(shape);
  e->strides = std::move(strides);
  e->keep_alive = keep_alive_;
  DLTensor& t = e->managed.dl_tensor;
  t.data = data_;
  t.device = device_;
  t.ndim = static_cast<int32_t>(e->shape.size());
  t.dtype = dtype;
  t.shape = e->shape.data();
  t.strides = e->strides.empty() ? nullptr : e->strides.data();
  t.byte_offset = 0;
  e->managed.manager_ctx = e;
  e->managed.deleter = &DeleteExport;
  return &e->managed;
}

DLManagedTensor* Tensor::ToDLPack() const {
  return ExportDLPack(DLDataType{kDLUInt, 8, 1}, {static_cast<int64_t>(nbytes_)}, {1});
}

StatusOr<DLManagedTensor*> Tensor::ToTypedDLPack() const {
  std::optional<DLDataType> dtype = DLDataTypeOfName(meta_->dtype());
  if (!dtype) {
    return Status::InvalidArgument("dtype '" + meta_->dtype() + "' has no DLPack type");
  }
  std::vector<int64_t> shape(meta_->shape().begin(), meta_->shape().end());
  std::vector<int64_t> strides(meta_->strides().begin(), meta_->strides().end());
  if (!strides.empty() && strides.size() != shape.size()) {
    return Status::InvalidArgument("tensor metadata has " + std::to_string(strides.size()) +
                                   " strides for " + std::to_string(shape.size()) + " dimensions");
  }
  const int ndim = static_cast<int>(shape.size());
  FERRY_ASSIGN_OR_RETURN(uint64_t elements,
                         SpanElements(shape.data(), strides.empty() ? nullptr : strides.data(),
                                      ndim));
  FERRY_ASSIGN_OR_RETURN(uint64_t needed, ElementBytes(elements, *dtype));
  if (needed > nbytes_) {
    return Status::InvalidArgument("tensor metadata describes " + std::to_string(needed) +
                                   " bytes but the tensor holds " + std::to_string(nbytes_));
  }
  return ExportDLPack(*dtype, std::move(shape), std::move(strides));
}

}  // namespace ferry::tensor
