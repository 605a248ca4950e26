// Dtype names and DLPack types.
//
// Tensor metadata names a dtype the way frameworks spell it ("float32",
// "bfloat16", "complex64", ...). This table maps those names to DLPack's
// (code, bits) pairs and back, so that a tensor can cross a language edge
// with its own dtype, shape and strides instead of as bytes the language
// reinterprets. Names missing here still travel (as bytes); they just cannot
// be described to DLPack.
//
// THREAD CONTRACT: pure functions over a constant table; thread-safe.
#pragma once

#include <dlpack/dlpack.h>

#include <optional>
#include <string_view>

namespace ferry::tensor {

// kDLBool of DLPack >= 0.8 (the dlpack.h this builds against predates it).
inline constexpr uint8_t kDLBoolCode = 6;

// The DLPack type of a dtype name (one lane), or nullopt for a name the table
// lacks.
std::optional<DLDataType> DLDataTypeOfName(std::string_view name);

// The dtype name of a DLPack type, or nullopt for one the table lacks
// (several lanes, unusual widths).
std::optional<std::string_view> NameOfDLDataType(DLDataType type);

}  // namespace ferry::tensor
