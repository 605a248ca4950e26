// ferry._core: the C++ runtime as a Python extension. Only type conversion,
// error mapping and GIL handling live here (STYLE.md rule 9).
#include <pybind11/pybind11.h>

#include "py_buffers.h"
#include "py_object_ref.h"
#include "py_runtime.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "ferry's C++ runtime";
  ferry::python::RegisterBuffers(m);
  ferry::python::RegisterObjectRef(m);
  ferry::python::RegisterRuntime(m);
}
