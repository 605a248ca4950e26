#include "ferry/tensor.h"

#include <cstdlib>
#include <cstring>

#include "ferry/errors.h"
#include "ferry/tensor/dtype.h"

namespace ferry {
namespace {

constexpr std::string_view kNames[] = {"float32", "float64", "float16", "bfloat16", "int8",
                                       "int16",   "int32",   "int64",   "uint8",    "bool"};

// 64-byte aligned, zeroed bytes owned by a shared_ptr.
std::shared_ptr<void> AllocateBytes(size_t nbytes, void** data) {
  size_t rounded = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (p == nullptr)
    internal::ThrowStatus(Status::ResourceExhausted("ferry::Tensor: out of memory"));
  std::memset(p, 0, rounded);
  *data = p;
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

size_t ShapeBytes(DType dtype, const std::vector<int64_t>& shape) {
  size_t n = DTypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0) internal::ThrowStatus(Status::InvalidArgument("ferry::Tensor: negative dimension"));
    n *= static_cast<size_t>(d);
  }
  return n;
}

DLDataType ToDLDataType(DType dtype) { return *tensor::DLDataTypeOfName(DTypeName(dtype)); }

bool FromDLDataType(DLDataType t, DType* out) {
  std::optional<std::string_view> name = tensor::NameOfDLDataType(t);
  if (!name) return false;
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (kNames[i] == *name) {
      *out = static_cast<DType>(i);
      return true;
    }
  }
  return false;
}

struct DLPackExport {
  DLManagedTensor managed;
  std::vector<int64_t> shape;
  std::shared_ptr<void> keep_alive;
};

}  // namespace

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat64:
    case DType::kInt64: return 8;
    case DType::kFloat32:
    case DType::kInt32: return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kInt16: return 2;
    default: return 1;
  }
}

std::string_view DTypeName(DType dtype) { return kNames[static_cast<size_t>(dtype)]; }

DType DTypeFromName(std::string_view name) {
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (kNames[i] == name) return static_cast<DType>(i);
  }
  internal::ThrowStatus(Status::InvalidArgument("unknown dtype '" + std::string(name) + "'"));
}

Tensor::Tensor() = default;

Tensor Tensor::Zeros(DType dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.nbytes_ = ShapeBytes(dtype, shape);
  t.keep_alive_ = AllocateBytes(t.nbytes_, &t.data_);
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::FromBytes(const void* data, size_t nbytes, DType dtype, std::vector<int64_t> shape) {
  size_t want = ShapeBytes(dtype, shape);
  if (want != nbytes) {
    internal::ThrowStatus(
        Status::InvalidArgument("ferry::Tensor::FromBytes: " + std::to_string(nbytes) +
                                " bytes given, the shape needs " + std::to_string(want)));
  }
  Tensor t = Zeros(dtype, std::move(shape));
  if (nbytes > 0) std::memcpy(t.data_, data, nbytes);
  return t;
}

Tensor Tensor::Wrap(void* data, DType dtype, std::vector<int64_t> shape,
                    std::shared_ptr<void> keep_alive) {
  Tensor t;
  t.nbytes_ = ShapeBytes(dtype, shape);
  t.data_ = data;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.keep_alive_ = std::move(keep_alive);
  return t;
}

Tensor Tensor::FromDLPack(DLManagedTensor* managed) {
  std::shared_ptr<void> owner(managed, [](void* p) {
    auto* m = static_cast<DLManagedTensor*>(p);
    if (m->deleter) m->deleter(m);
  });
  const DLTensor& dl = managed->dl_tensor;
  if (dl.device.device_type != kDLCPU) {
    internal::ThrowStatus(Status::InvalidArgument("ferry::Tensor holds CPU tensors only"));
  }
  DType dtype;
  if (!FromDLDataType(dl.dtype, &dtype)) {
    internal::ThrowStatus(Status::InvalidArgument("ferry::Tensor::FromDLPack: unsupported dtype"));
  }
  std::vector<int64_t> shape(dl.shape, dl.shape + dl.ndim);
  if (dl.strides != nullptr) {
    int64_t expected = 1;
    for (int i = dl.ndim - 1; i >= 0; --i) {
      if (shape[i] != 1 && dl.strides[i] != expected) {
        internal::ThrowStatus(Status::InvalidArgument(
            "ferry::Tensor::FromDLPack: the tensor is not contiguous (make it contiguous first)"));
      }
      expected *= shape[i];
    }
  }
  void* data = static_cast<uint8_t*>(dl.data) + dl.byte_offset;
  return Wrap(data, dtype, std::move(shape), std::move(owner));
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

Tensor Tensor::Clone() const { return FromBytes(data_, nbytes_, dtype_, shape_); }

DLManagedTensor* Tensor::ToDLPack() const {
  auto* e = new DLPackExport();
  e->shape = shape_;
  e->keep_alive = keep_alive_;
  DLTensor& dl = e->managed.dl_tensor;
  dl.data = data_;
  dl.device = {kDLCPU, 0};
  dl.ndim = static_cast<int32_t>(shape_.size());
  dl.dtype = ToDLDataType(dtype_);
  dl.shape = e->shape.data();
  dl.strides = nullptr;
  dl.byte_offset = 0;
  e->managed.manager_ctx = e;
  e->managed.deleter = [](DLManagedTensor* m) {
    delete static_cast<DLPackExport*>(m->manager_ctx);
  };
  return &e->managed;
}

void Tensor::CheckDType(DType want) const {
  if (want != dtype_) {
    internal::ThrowStatus(
        Status::InvalidArgument("ferry::Tensor::data<" + std::string(DTypeName(want)) +
                                ">() on a tensor of dtype " + std::string(DTypeName(dtype_))));
  }
}

}  // namespace ferry
