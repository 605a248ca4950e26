#include "ferry/tensor/dtype.h"

#include <iterator>

namespace ferry::tensor {
namespace {

struct Entry {
  std::string_view name;
  uint8_t code;
  uint8_t bits;
};

constexpr Entry kTable[] = {
    {"float32", kDLFloat, 32},       {"float64", kDLFloat, 64},     {"float16", kDLFloat, 16},
    {"bfloat16", kDLBfloat, 16},     {"int8", kDLInt, 8},           {"int16", kDLInt, 16},
    {"int32", kDLInt, 32},           {"int64", kDLInt, 64},         {"uint8", kDLUInt, 8},
    {"bool", kDLBoolCode, 8},        {"complex32", kDLComplex, 32}, {"complex64", kDLComplex, 64},
    {"complex128", kDLComplex, 128},
};

}  // namespace

std::optional<DLDataType> DLDataTypeOfName(std::string_view name) {
  for (const Entry& e : kTable) {
    if (e.name == name) return DLDataType{e.code, e.bits, 1};
  }
  return std::nullopt;
}

std::optional<std::string_view> NameOfDLDataType(DLDataType type) {
  if (type.lanes != 1) return std::nullopt;
  for (const Entry& e : kTable) {
    if (e.code == type.code && e.bits == type.bits) return e.name;
  }
  return std::nullopt;
}

}  // namespace ferry::tensor
