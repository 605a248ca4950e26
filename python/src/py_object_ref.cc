#include "py_object_ref.h"

#include "py_errors.h"

namespace py = pybind11;

namespace ferry::python {

py::object WrapRef(core::ObjectRef ref, const std::shared_ptr<core::CoreWorker>& core) {
  return py::cast(std::make_unique<PyObjectRef>(std::move(ref), core));
}

py::object NewRefHandle(core::ObjectRef ref, const std::shared_ptr<core::CoreWorker>& core) {
  if (core) core->AddLocalRef(ref);
  return WrapRef(std::move(ref), core);
}

std::vector<core::ObjectRef> RefsFromPython(const py::handle& seq) {
  std::vector<core::ObjectRef> refs;
  for (py::handle item : seq) {
    if (!py::isinstance<PyObjectRef>(item)) {
      throw py::type_error("expected an ObjectRef, got " +
                           std::string(py::str(py::type::of(item).attr("__name__"))));
    }
    refs.push_back(item.cast<PyObjectRef&>().ref());
  }
  return refs;
}

void RegisterObjectRef(py::module_& m) {
  py::class_<PyObjectRef, std::unique_ptr<PyObjectRef>>(m, "ObjectRef")
      .def("hex", [](const PyObjectRef& r) { return r.ref().id.Hex(); })
      .def("binary", [](const PyObjectRef& r) { return py::bytes(r.ref().id.Binary()); })
      .def_property_readonly("owner_address",
                             [](const PyObjectRef& r) { return r.ref().owner_address; })
      .def_property_readonly("owner_id",
                             [](const PyObjectRef& r) { return r.ref().owner_id.Hex(); })
      .def("__eq__",
           [](const PyObjectRef& a, const py::object& b) {
             return py::isinstance<PyObjectRef>(b) && a.ref().id == b.cast<PyObjectRef&>().ref().id;
           })
      .def("__hash__",
           [](const PyObjectRef& r) { return static_cast<py::ssize_t>(r.ref().id.Hash()); })
      .def("__repr__", [](const PyObjectRef& r) { return "ObjectRef(" + r.ref().id.Hex() + ")"; })
      .def("__reduce__", [](const PyObjectRef& r) {
        // Serialized inside a value: it may be used anywhere, any time.
        if (auto core = r.core()) core->PinEscapedRef(r.ref());
        py::object rebuild = py::module_::import("ferry._private.refs").attr("rebuild_ref");
        return py::make_tuple(rebuild,
                              py::make_tuple(py::bytes(r.ref().id.Binary()), r.ref().owner_address,
                                             py::bytes(r.ref().owner_id.Binary())));
      });
}

}  // namespace ferry::python
