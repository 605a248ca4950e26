// ferry::Tensor: a framework-free, DLPack-described tensor of the C++ API.
//
// A Tensor is a dtype, a shape and a contiguous row-major CPU buffer kept
// alive by a shared owner. Copies are cheap and share the bytes (like
// torch.Tensor): writing through one copy is seen by all. Returned from a
// method called with SetTensorTransport("gloo"), its bytes stay in the
// producing actor (the tensor store) and move straight to the actor that
// takes the ObjectRef; passed back to the producer it is the same memory.
// With the object store its bytes travel as out-of-band buffers (no extra
// serialization copy). Interop: ToDLPack()/FromDLPack() (any framework).
//
// Thread contract: a value type; distinct copies may be used on different
// threads; writes to the shared bytes are the caller's to synchronize.
//
//   ferry::Tensor t = ferry::Tensor::FromVector(std::vector<float>(6, 1.f), {2, 3});
//   float* p = t.data<float>();                 // 6 floats, row-major
//   std::vector<float> v = t.ToVector<float>();
//   ferry::Tensor u = ferry::Tensor::FromBytes(bytes, n, ferry::DType::kUInt8, {n});
//   DLManagedTensor* m = t.ToDLPack();          // torch.from_dlpack(m), ...
#pragma once

#include <dlpack/dlpack.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ferry {

enum class DType : uint8_t {
  kFloat32,
  kFloat64,
  kFloat16,
  kBFloat16,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kUInt8,
  kBool,
};

// Bytes per element.
size_t DTypeSize(DType dtype);
// The name Python (torch) uses: "float32", "int64", "bool", ...
std::string_view DTypeName(DType dtype);
// Inverse of DTypeName; throws InvalidArgumentError for an unknown name.
DType DTypeFromName(std::string_view name);

template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kFloat32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::kFloat64;
};
template <>
struct DTypeOf<int8_t> {
  static constexpr DType value = DType::kInt8;
};
template <>
struct DTypeOf<int16_t> {
  static constexpr DType value = DType::kInt16;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kInt32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::kInt64;
};
template <>
struct DTypeOf<uint8_t> {
  static constexpr DType value = DType::kUInt8;
};
template <>
struct DTypeOf<bool> {
  static constexpr DType value = DType::kBool;
};

class Tensor {
 public:
  // An empty tensor: no bytes, shape {0}, float32.
  Tensor();

  // A new zero-filled tensor.
  static Tensor Zeros(DType dtype, std::vector<int64_t> shape);
  // Copies `nbytes` bytes into a new tensor; nbytes must equal the shape's size.
  static Tensor FromBytes(const void* data, size_t nbytes, DType dtype, std::vector<int64_t> shape);
  // Copies `values`; the shape defaults to {values.size()}.
  template <typename T>
  static Tensor FromVector(const std::vector<T>& values, std::vector<int64_t> shape = {}) {
    static_assert(!std::is_same_v<T, bool>,
                  "ferry::Tensor::FromVector<bool>: std::vector<bool> "
                  "is packed; use FromBytes with DType::kBool");
    if (shape.empty()) shape = {static_cast<int64_t>(values.size())};
    return FromBytes(values.data(), values.size() * sizeof(T), DTypeOf<T>::value, std::move(shape));
  }
  // Describes `data` without copying; `keep_alive` owns the bytes (may be
  // null when the caller guarantees they outlive every copy).
  static Tensor Wrap(void* data, DType dtype, std::vector<int64_t> shape,
                     std::shared_ptr<void> keep_alive);
  // Takes ownership of `managed` (its deleter runs once, when the last copy
  // dies). Requires a compact row-major CPU tensor of a supported dtype;
  // throws InvalidArgumentError otherwise (after running the deleter).
  static Tensor FromDLPack(DLManagedTensor* managed);

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const;
  size_t nbytes() const { return nbytes_; }
  // "cpu" (the only device of ferry::Tensor for now).
  std::string device() const { return "cpu"; }
  void* data_ptr() const { return data_; }
  // Typed access; throws InvalidArgumentError when T does not match dtype().
  template <typename T>
  T* data() const {
    CheckDType(DTypeOf<T>::value);
    return static_cast<T*>(data_);
  }
  template <typename T>
  std::vector<T> ToVector() const {
    const T* p = data<T>();
    return std::vector<T>(p, p + numel());
  }
  // A deep copy with its own bytes.
  Tensor Clone() const;
  // True when both describe the same bytes (same memory, not equal values).
  bool SharesMemoryWith(const Tensor& other) const {
    return data_ == other.data_ && nbytes_ == other.nbytes_;
  }
  // A new DLManagedTensor (dtype and shape set) holding a reference to the bytes.
  DLManagedTensor* ToDLPack() const;
  const std::shared_ptr<void>& keep_alive() const { return keep_alive_; }

 private:
  void CheckDType(DType want) const;

  void* data_ = nullptr;
  size_t nbytes_ = 0;
  DType dtype_ = DType::kFloat32;
  std::vector<int64_t> shape_{0};
  std::shared_ptr<void> keep_alive_;
};

}  // namespace ferry
