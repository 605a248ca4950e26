#include "py_buffers.h"

namespace py = pybind11;

namespace ferry::python {
namespace {

// Exports one span of a ReadableValue through the buffer protocol.
struct ValueSpan {
  std::shared_ptr<object::ReadableValue> owner;
  uint8_t* data;
  size_t size;
};

py::memoryview View(const std::shared_ptr<object::ReadableValue>& owner, std::span<uint8_t> span) {
  py::object exporter = py::cast(ValueSpan{owner, span.data(), span.size()});
  return py::memoryview(exporter);
}

}  // namespace

void RegisterBuffers(py::module_& m) {
  py::class_<ValueSpan>(m, "_ValueSpan", py::buffer_protocol()).def_buffer([](ValueSpan& s) {
    return py::buffer_info(s.data, 1, py::format_descriptor<uint8_t>::format(), 1,
                           {static_cast<py::ssize_t>(s.size)}, {1}, /*readonly=*/false);
  });
}

py::tuple ValueToPython(const std::shared_ptr<object::ReadableValue>& value) {
  if (!value->is_shm() && value->num_buffers() == 0) {
    // Small plain values: a bytes copy is cheaper than an exporter object
    // plus a memoryview.
    auto d = value->data();
    return py::make_tuple(value->format(),
                          py::bytes(reinterpret_cast<const char*>(d.data()), d.size()), py::list());
  }
  py::list buffers;
  for (size_t i = 0; i < value->num_buffers(); ++i) buffers.append(View(value, value->buffer(i)));
  return py::make_tuple(value->format(), View(value, value->data()), buffers);
}

}  // namespace ferry::python
