// Zero-copy views of values for Python: memoryviews whose memory is an
// object's bytes (inline copy or shared-memory mapping), kept alive by the
// memoryview's exporter. Call with the GIL held.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>

#include "ferry/object/readable_value.h"

namespace ferry::python {

void RegisterBuffers(pybind11::module_& m);

// (format, data, [buffers]) with each part a writable memoryview.
pybind11::tuple ValueToPython(const std::shared_ptr<object::ReadableValue>& value);

}  // namespace ferry::python
