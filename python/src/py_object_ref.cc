#include "py_object_ref.h"

#include <cctype>

#include "py_errors.h"

namespace py = pybind11;

namespace ferry::python {

py::object WrapRef(core::ObjectRef ref, const std::shared_ptr<core::CoreWorker>& core,
                   std::string tensor_transport) {
  return py::cast(std::make_unique<PyObjectRef>(std::move(ref), core, std::move(tensor_transport)));
}

namespace {

// What ferry._private.refs.rebuild_ref takes to rebuild `r`.
py::tuple RebuildArgs(const PyObjectRef& r) {
  return py::make_tuple(py::bytes(r.ref().id.Binary()), r.ref().owner_address,
                        py::bytes(r.ref().owner_id.Binary()), r.tensor_transport());
}

}  // namespace

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
      .def("tensor_transport",
           [](const PyObjectRef& r) -> py::object {
             // Ray's spelling: the upper-case name; None for the object store.
             const std::string& t = r.tensor_transport();
             if (t.empty() || t == "object_store") return py::none();
             std::string upper = t;
             for (char& c : upper)
               c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
             return py::str(upper);
           })
      .def("_rebuild_args", &RebuildArgs)
      .def("__reduce__", [](const PyObjectRef& r) {
        // Pickled outside ferry's serializers (which reduce refs themselves
        // and keep them alive while the value lives): ferry cannot follow
        // this copy, so the object lives as long as this process.
        if (auto core = r.core()) core->PinEscapedRef(r.ref());
        py::object rebuild = py::module_::import("ferry._private.refs").attr("rebuild_ref");
        return py::make_tuple(rebuild, RebuildArgs(r));
      });
}

}  // namespace ferry::python
