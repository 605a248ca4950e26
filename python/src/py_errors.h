// The one table from Status codes to Python exceptions (ferry.exceptions).
// Call with the GIL held.
#pragma once

#include "ferry/status.h"

namespace ferry::python {

// Raises the Python exception for `status` (throws pybind11::error_already_set).
[[noreturn]] void ThrowStatus(const Status& status);

// Unwraps `s` or raises.
template <typename T>
T ValueOrThrow(StatusOr<T> s) {
  if (!s.ok()) ThrowStatus(s.status());
  return std::move(s).value();
}
inline void CheckOk(const Status& s) {
  if (!s.ok()) ThrowStatus(s);
}

}  // namespace ferry::python
