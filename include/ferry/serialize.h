// How the C++ API serializes arguments and results: cereal's binary archive.
//
// Every type cereal knows works: arithmetic types, std::string, vector, map,
// unordered_map, set, pair, tuple, optional, variant, array, ferry::Tensor,
// and user structs that opt in with one macro inside the struct:
//
//   struct Batch {
//     std::string name;
//     std::map<std::string, ferry::Tensor> tensors;
//     int step = 0;
//     FERRY_SERIALIZE(name, tensors, step)
//   };
//
// (A struct with its own cereal `serialize`/`save`/`load` works too.) Tensors
// are never written into the archive: the archive holds an index, dtype and
// shape, and the bytes travel beside it — as out-of-band buffers of an
// object-store value, or kept in the producer's tensor store for a method
// called with SetTensorTransport (RDT), wherever they are nested.
//
// Thread contract: Encode/Decode are reentrant; the tensor sink and source
// are per thread (a scope set by Encode/Decode).
#pragma once

#include <istream>
#include <memory>
#include <sstream>
#include <streambuf>
#include <string>
#include <string_view>
#include <vector>

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include "ferry/tensor.h"

// Inside a struct: lists the members that are serialized, in order.
#define FERRY_SERIALIZE(...)                 \
  template <class FerryArchive_>             \
  void serialize(FerryArchive_& ferry_ar_) { \
    ferry_ar_(__VA_ARGS__);                  \
  }

namespace ferry::internal {

// The bytes of one tensor on the decode side.
struct RawBuffer {
  void* data = nullptr;
  size_t nbytes = 0;
  std::shared_ptr<void> keep_alive;
};

// A serialized value: the archive plus the tensors it refers to by index.
struct EncodedValue {
  std::string data;
  std::vector<Tensor> tensors;
};

// What Decode reads: the archive and the bytes of tensor i at buffers[i].
struct DecodeInput {
  std::string_view data;
  std::vector<RawBuffer> buffers;
};

// Sets this thread's tensor sink (Encode) or source (Decode) for a scope.
class EncodeScope {
 public:
  explicit EncodeScope(std::vector<Tensor>* sink);
  ~EncodeScope();
  EncodeScope(const EncodeScope&) = delete;
  EncodeScope& operator=(const EncodeScope&) = delete;

 private:
  std::vector<Tensor>* prev_;
};
class DecodeScope {
 public:
  explicit DecodeScope(const std::vector<RawBuffer>* source);
  ~DecodeScope();
  DecodeScope(const DecodeScope&) = delete;
  DecodeScope& operator=(const DecodeScope&) = delete;

 private:
  const std::vector<RawBuffer>* prev_;
};
// Appends `t` to the current sink; returns its index.
uint32_t AddTensor(const Tensor& t);
// Tensor `index` of the current source, checked against dtype and shape.
Tensor TensorAt(uint32_t index, DType dtype, std::vector<int64_t> shape);

// A read-only istream buffer over bytes it does not own.
class ViewStreamBuf : public std::streambuf {
 public:
  explicit ViewStreamBuf(std::string_view bytes) {
    char* p = const_cast<char*>(bytes.data());
    setg(p, p, p + bytes.size());
  }
};

template <typename T>
EncodedValue Encode(const T& value) {
  EncodedValue out;
  std::ostringstream os(std::ios::binary);
  {
    EncodeScope scope(&out.tensors);
    cereal::BinaryOutputArchive ar(os);
    ar(value);
  }
  out.data = std::move(os).str();
  return out;
}

// Throws InvalidArgumentError when the bytes do not decode as T.
[[noreturn]] void ThrowDecodeError(const char* what);

template <typename T>
void Decode(const DecodeInput& in, T& out) {
  ViewStreamBuf buf(in.data);
  std::istream is(&buf);
  DecodeScope scope(&in.buffers);
  try {
    cereal::BinaryInputArchive ar(is);
    ar(out);
  } catch (const cereal::Exception& e) {
    ThrowDecodeError(e.what());
  }
}

}  // namespace ferry::internal

namespace ferry {

template <class Archive>
void save(Archive& ar, const Tensor& t) {
  ar(internal::AddTensor(t), static_cast<uint8_t>(t.dtype()), t.shape());
}

template <class Archive>
void load(Archive& ar, Tensor& t) {
  uint32_t index = 0;
  uint8_t dtype = 0;
  std::vector<int64_t> shape;
  ar(index, dtype, shape);
  t = internal::TensorAt(index, static_cast<DType>(dtype), std::move(shape));
}

}  // namespace ferry
