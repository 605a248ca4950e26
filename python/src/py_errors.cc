#include "py_errors.h"

#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace ferry::python {

void ThrowStatus(const Status& status) {
  // The table lives in ferry.exceptions (error_for_status), shared with the
  // errors that arrive inside values.
  py::object error = py::module_::import("ferry.exceptions")
                         .attr("error_for_status")(static_cast<int>(status.code()),
                                                   status.message());
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
  throw py::error_already_set();
}

}  // namespace ferry::python
