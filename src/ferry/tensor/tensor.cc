#include "ferry/tensor/tensor.h"

#include <charconv>
#include <utility>

#include "ferry/common/logging.h"

namespace ferry::tensor {
namespace {

const std::shared_ptr<const proto::TensorMetaProto>& EmptyMeta() {
  static const auto* empty =
      new std::shared_ptr<const proto::TensorMetaProto>(std::make_shared<proto::TensorMetaProto>());
  return *empty;
}

// Releases a DLManagedTensor that FromDLPack took: calls its deleter once.
void DeleteManaged(DLManagedTensor* managed) {
  if (managed->deleter != nullptr) managed->deleter(managed);
}

// Size in bytes of a compact tensor, or InvalidArgument.
StatusOr<uint64_t> CompactBytes(const DLTensor& t) {
  if (t.ndim < 0) return Status::InvalidArgument("DLPack tensor has negative ndim " + std::to_string(t.ndim));
  if (t.ndim > 0 && t.shape == nullptr) return Status::InvalidArgument("DLPack tensor has ndim > 0 but no shape");
  uint64_t numel = 1;
  for (int i = 0; i < t.ndim; ++i) {
    if (t.shape[i] < 0) {
      return Status::InvalidArgument("DLPack tensor has negative extent " + std::to_string(t.shape[i]) +
                                     " in dimension " + std::to_string(i));
    }
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(t.shape[i]), &numel)) {
      return Status::InvalidArgument("DLPack tensor's element count overflows 64 bits");
    }
  }
  if (t.strides != nullptr && numel > 0) {
    // Row-major compact: stride[i] == product of extents after i, except that
    // a dimension of extent 1 may carry any stride (frameworks differ there).
    int64_t expected = 1;
    for (int i = t.ndim - 1; i >= 0; --i) {
      if (t.shape[i] != 1 && t.strides[i] != expected) {
        return Status::InvalidArgument(
            "DLPack tensor is not contiguous (stride " + std::to_string(t.strides[i]) + " in dimension " +
            std::to_string(i) + ", expected " + std::to_string(expected) +
            "); call .contiguous() before sending it");
      }
      expected *= t.shape[i];
    }
  }
  const uint64_t bits_per_element = uint64_t{t.dtype.bits} * t.dtype.lanes;
  uint64_t bits = 0;
  if (__builtin_mul_overflow(numel, bits_per_element, &bits)) {
    return Status::InvalidArgument("DLPack tensor's size in bits overflows 64 bits");
  }
  if (bits % 8 != 0) {
    return Status::InvalidArgument("DLPack tensor of " + std::to_string(numel) + " elements of " +
                                   std::to_string(bits_per_element) + " bits is not a whole number of bytes");
  }
  return bits / 8;
}

// What ToDLPack hands out: the DLManagedTensor plus the storage its pointers
// refer to, and the reference that keeps the bytes alive.
struct Export {
  DLManagedTensor managed{};
  int64_t shape[1] = {0};
  int64_t strides[1] = {1};
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
    case kDLCPU:
      return std::string("cpu");
    case kDLCUDA:
      return "cuda:" + std::to_string(device.device_id);
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
  if (managed == nullptr) return Status::InvalidArgument("Tensor::FromDLPack: managed tensor is null");
  // Own it from here on: the deleter runs when `owner`'s last copy dies,
  // including right now if validation fails.
  std::shared_ptr<void> owner(managed, [](void* m) { DeleteManaged(static_cast<DLManagedTensor*>(m)); });
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
  if (t.data == nullptr && nbytes > 0) {
    return Status::InvalidArgument("DLPack tensor of " + std::to_string(nbytes) + " bytes has no data");
  }
  void* data = static_cast<char*>(t.data) + t.byte_offset;
  return Tensor(data, nbytes, t.device, std::move(meta), std::move(owner));
}

Tensor Tensor::Wrap(void* data, uint64_t nbytes, proto::TensorMetaProto meta, std::shared_ptr<void> keep_alive) {
  StatusOr<DLDevice> device = ParseDevice(meta.device());
  FERRY_CHECK(device.ok()) << "Tensor::Wrap: " << device.status();
  meta.set_nbytes(nbytes);
  return Tensor(data, nbytes, *device, std::move(meta), std::move(keep_alive));
}

StatusOr<Tensor> Tensor::AllocateCpu(proto::TensorMetaProto meta, CpuAllocator& alloc, bool* pooled) {
  FERRY_ASSIGN_OR_RETURN(DLDevice device, ParseDevice(meta.device()));
  if (device.device_type != kDLCPU) {
    return Status::InvalidArgument("Tensor::AllocateCpu: tensor metadata names device \"" + meta.device() +
                                   "\", not the CPU");
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

DLManagedTensor* Tensor::ToDLPack() const {
  auto* e = new Export;
  e->shape[0] = static_cast<int64_t>(nbytes_);
  e->keep_alive = keep_alive_;
  DLTensor& t = e->managed.dl_tensor;
  t.data = data_;
  t.device = device_;
  t.ndim = 1;
  t.dtype = DLDataType{kDLUInt, 8, 1};
  t.shape = e->shape;
  t.strides = e->strides;
  t.byte_offset = 0;
  e->managed.manager_ctx = e;
  e->managed.deleter = &DeleteExport;
  return &e->managed;
}

}  // namespace ferry::tensor
