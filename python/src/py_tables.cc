#include "py_tables.h"

#include <pybind11/stl.h>

#include <string>

#include "ferry/status.h"
#include "ferry/transport/gpu_support.h"
#include "ferry/transport/transport_table.h"
#include "py_errors.h"

namespace py = pybind11;

namespace ferry::python {
namespace {

// Codes cross the RPC wire as small integers; none is above this.
constexpr int kMaxStatusCode = 1023;

}  // namespace

void RegisterTables(py::module_& m) {
  m.def(
      "transports",
      [] {
        py::list out;
        for (const transport::TransportInfo& t : transport::Transports()) {
          py::dict d;
          d["name"] = t.name;
          d["kind"] = std::string(transport::TransportKindName(t.kind));
          d["devices"] = t.devices;
          d["available"] = t.available;
          d["same_host"] = t.same_host;
          d["collective_backends"] = t.collective_backends;
          d["one_sided_backends"] = t.one_sided_backends;
          d["custom"] = t.custom;
          out.append(std::move(d));
        }
        return out;
      },
      "Every tensor transport as a dict: name, kind ('object_store', 'one_sided', 'two_sided'), "
      "devices, available (in this build), same_host, collective_backends, one_sided_backends, "
      "custom (registered by a user).");
  m.def(
      "status_codes",
      [] {
        // StatusCodeName names every code (the compiler checks its switch
        // against the enum) and answers "UNKNOWN" for other integers.
        py::dict out;
        for (int c = 0; c <= kMaxStatusCode; ++c) {
          std::string_view name = StatusCodeName(static_cast<StatusCode>(c));
          if (name != "UNKNOWN") out[py::str(name.data(), name.size())] = c;
        }
        return out;
      },
      "{code name: integer} for every status code, e.g. 'INVALID_ARGUMENT': 3.");
  m.def(
      "gpu_support",
      [] {
        transport::GpuSupport g;
        {
          py::gil_scoped_release release;  // the first call loads the libraries
          g = transport::ProbeGpuSupport();
        }
        py::dict d;
        d["cuda"] = g.cuda;
        d["devices"] = g.devices;
        d["cuda_library"] = g.cuda_library;
        d["driver_version"] = g.driver_version;
        d["runtime_version"] = g.runtime_version;
        d["nccl"] = g.nccl;
        d["nccl_library"] = g.nccl_library;
        d["nccl_version"] = g.nccl_version;
        d["reason"] = g.reason;
        return d;
      },
      "What this process can do with GPUs: cuda (the runtime loads and a device is visible), "
      "devices, cuda_library, driver_version, runtime_version, nccl, nccl_library, "
      "nccl_version, reason (why not, or '').");
  m.def(
      "check_tensor_device",
      [](const std::string& transport, const std::string& device) {
        CheckOk(transport::CheckTensorDevice(transport, device));
      },
      py::arg("transport"), py::arg("device"),
      "Raises ValueError when `transport` does not move tensors on `device` ('cuda:0', 'meta').");
}

}  // namespace ferry::python
