#include "py_errors.h"

#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace ferry::python {

void ThrowStatus(const Status& status) {
  const char* name = "FerryError";
  switch (status.code()) {
    case StatusCode::kDeadlineExceeded: name = "GetTimeoutError"; break;
    case StatusCode::kUnavailable: name = "ActorDiedError"; break;
    case StatusCode::kDataLoss: name = "ObjectLostError"; break;
    case StatusCode::kTaskError: name = "TaskError"; break;
    case StatusCode::kAborted: name = "TransportError"; break;
    case StatusCode::kFailedPrecondition: name = "CollectiveGroupError"; break;
    case StatusCode::kInvalidArgument: name = "ValueError"; break;
    case StatusCode::kAlreadyExists: name = "ValueError"; break;
    case StatusCode::kNotFound: name = "ValueError"; break;
    default: break;
  }
  if (status.code() == StatusCode::kUnimplemented) name = "NotImplementedError";
  py::object cls;
  if (std::string_view(name) == "ValueError") {
    cls = py::reinterpret_borrow<py::object>(PyExc_ValueError);
  } else if (std::string_view(name) == "NotImplementedError") {
    cls = py::reinterpret_borrow<py::object>(PyExc_NotImplementedError);
  } else {
    cls = py::module_::import("ferry.exceptions").attr(name);
  }
  PyErr_SetObject(cls.ptr(), py::str(status.message()).ptr());
  throw py::error_already_set();
}

}  // namespace ferry::python
