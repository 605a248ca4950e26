#include "ferry/serialize.h"

#include "ferry/errors.h"

namespace ferry::internal {
namespace {
thread_local std::vector<Tensor>* tls_sink = nullptr;
thread_local const std::vector<RawBuffer>* tls_source = nullptr;
}  // namespace

EncodeScope::EncodeScope(std::vector<Tensor>* sink) : prev_(tls_sink) { tls_sink = sink; }
EncodeScope::~EncodeScope() { tls_sink = prev_; }
DecodeScope::DecodeScope(const std::vector<RawBuffer>* source) : prev_(tls_source) {
  tls_source = source;
}
DecodeScope::~DecodeScope() { tls_source = prev_; }

uint32_t AddTensor(const Tensor& t) {
  if (tls_sink == nullptr) {
    ThrowStatus(Status::FailedPrecondition(
        "a ferry::Tensor was serialized outside ferry (use ferry's Encode, Put or a remote call)"));
  }
  tls_sink->push_back(t);
  return static_cast<uint32_t>(tls_sink->size() - 1);
}

Tensor TensorAt(uint32_t index, DType dtype, std::vector<int64_t> shape) {
  if (tls_source == nullptr || index >= tls_source->size()) {
    ThrowDecodeError("a tensor index has no tensor beside the value");
  }
  if (static_cast<uint8_t>(dtype) > static_cast<uint8_t>(DType::kBool))
    ThrowDecodeError("unknown dtype");
  const RawBuffer& raw = (*tls_source)[index];
  size_t want = DTypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0) ThrowDecodeError("negative tensor dimension");
    want *= static_cast<size_t>(d);
  }
  if (want != raw.nbytes) {
    ThrowDecodeError(("tensor " + std::to_string(index) + " has " + std::to_string(raw.nbytes) +
                      " bytes, its shape needs " + std::to_string(want))
                         .c_str());
  }
  return Tensor::Wrap(raw.data, dtype, std::move(shape), raw.keep_alive);
}

void ThrowDecodeError(const char* what) {
  ThrowStatus(Status::InvalidArgument(
      std::string("ferry: a value did not decode as the expected C++ type (do the caller's and "
                  "the method's types agree?): ") +
      what));
}

}  // namespace ferry::internal
