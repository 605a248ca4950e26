#include "py_transport.h"

#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "ferry/transport/registry.h"
#include "py_errors.h"

namespace py = pybind11;

namespace ferry::python {
namespace {

// ferry.experimental.tensor_transport's Buffer and PullItem (NamedTuples),
// looked up once with the GIL held and kept until exit.
py::handle PythonType(const char* name) {
  py::object t = py::module_::import("ferry.experimental.tensor_transport").attr(name);
  return t.release();
}

py::handle BufferType() {
  static py::handle type = PythonType("Buffer");
  return type;
}

py::handle PullItemType() {
  static py::handle type = PythonType("PullItem");
  return type;
}

py::object MakeBuffer(const transport::BufferView& b, bool writable) {
  return BufferType()(reinterpret_cast<uintptr_t>(b.data),
                      py::memoryview::from_memory(b.data, static_cast<py::ssize_t>(b.nbytes),
                                                  /*readonly=*/!writable));
}

py::list MakeBuffers(const std::vector<transport::BufferView>& buffers) {
  py::list out;
  for (const transport::BufferView& b : buffers) out.append(MakeBuffer(b, false));
  return out;
}

// The Status of a Python exception a user's method raised (the GIL held).
Status Raised(const std::string& name, const char* method, py::error_already_set& e) {
  std::string what = name.empty() ? "" : "tensor transport '" + name + "': ";
  what += std::string(method) + " raised " + py::str(e.type().attr("__name__")).cast<std::string>() +
          ": " + py::str(e.value()).cast<std::string>();
  return e.matches(PyExc_TimeoutError) ? Status::DeadlineExceeded(what) : Status::Aborted(what);
}

class PyOneSidedTransport final : public transport::OneSidedTransport {
 public:
  // Takes a reference to `instance` (the GIL held). The instance is kept
  // until exit: its last reference must not be dropped without the GIL, and
  // a process makes one per transport.
  PyOneSidedTransport(std::string name, py::object instance)
      : name_(std::move(name)), instance_(instance.release()) {}

  const std::string& name() const override { return name_; }

  StatusOr<transport::ExportedBuffers> Export(
      const std::vector<transport::BufferView>& buffers) override {
    py::gil_scoped_acquire gil;
    try {
      py::object result = instance_.attr("export")(MakeBuffers(buffers));
      auto [endpoint, descriptors] =
          result.cast<std::pair<std::string, std::vector<std::string>>>();
      if (descriptors.size() != buffers.size()) {
        return Status::Aborted("tensor transport '" + name_ + "': export returned " +
                               std::to_string(descriptors.size()) + " descriptors for " +
                               std::to_string(buffers.size()) + " buffers");
      }
      return transport::ExportedBuffers{std::move(endpoint), std::move(descriptors)};
    } catch (py::error_already_set& e) {
      return Raised(name_, "export", e);
    } catch (const py::cast_error&) {
      return Status::Aborted("tensor transport '" + name_ +
                             "': export must return (endpoint: str, descriptors: list[str])");
    }
  }

  void Release(const std::vector<transport::BufferView>& buffers) override {
    py::gil_scoped_acquire gil;
    try {
      instance_.attr("release")(MakeBuffers(buffers));
    } catch (py::error_already_set& e) {
      // The object is gone either way; say so on stderr like an unraisable
      // exception.
      e.discard_as_unraisable(("ferry: tensor transport '" + name_ + "' release").c_str());
    }
  }

  Status Pull(std::span<const transport::PullItem> items, Deadline deadline) override {
    py::gil_scoped_acquire gil;
    try {
      py::list requests;
      for (const transport::PullItem& i : items) {
        requests.append(PullItemType()(py::str(i.endpoint.data(), i.endpoint.size()),
                                       py::str(i.descriptor.data(), i.descriptor.size()),
                                       MakeBuffer(i.dst, true)));
      }
      py::object timeout = py::none();
      if (!deadline.IsNever()) {
        timeout = py::float_(std::chrono::duration<double>(deadline.Remaining()).count());
      }
      instance_.attr("pull")(requests, timeout);
      return Status::Ok();
    } catch (py::error_already_set& e) {
      return Raised(name_, "pull", e);
    }
  }

 private:
  const std::string name_;
  py::handle instance_;
};

}  // namespace

void RegisterCustomTransports(py::module_& m) {
  m.def(
      "register_one_sided_transport",
      [](const std::string& name, std::vector<std::string> devices, py::object factory) {
        // Kept until exit, like the registry that calls it.
        py::handle make = factory.release();
        auto create = [name, make]() -> StatusOr<std::unique_ptr<transport::OneSidedTransport>> {
          py::gil_scoped_acquire gil;
          try {
            py::object instance = make();
            return std::unique_ptr<transport::OneSidedTransport>(
                new PyOneSidedTransport(name, std::move(instance)));
          } catch (py::error_already_set& e) {
            return Raised(name, "creating it", e);
          }
        };
        CheckOk(transport::RegisterOneSidedTransport(name, std::move(devices), create));
      },
      py::arg("name"), py::arg("devices"), py::arg("factory"),
      "Registers the one-sided transport `name` for tensors of `devices`; `factory()` makes "
      "this process's instance (export, release, pull) on first use.");
}

}  // namespace ferry::python
