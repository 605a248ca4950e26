#include "py_state.h"

#include <pybind11/stl.h>

#include <memory>

#include "ferry/cluster/head_client.h"
#include "ferry/common/id.h"
#include "py_cluster.h"
#include "py_errors.h"

namespace py = pybind11;

namespace ferry::python {
namespace {

std::string HexOf(const std::string& binary) {
  return HexEncode(reinterpret_cast<const uint8_t*>(binary.data()), binary.size());
}

// One row of `ferry list actors`.
py::dict ActorRow(const proto::ActorInfo& info) {
  static const char* kStates[] = {"PENDING", "ALIVE", "DEAD", "RESTARTING"};
  py::dict d;
  d["actor_id"] = HexOf(info.actor_id());
  d["class_name"] = info.class_name();
  d["name"] = info.name();
  d["state"] = static_cast<size_t>(info.state()) < std::size(kStates) ? kStates[info.state()]
                                                                      : "UNKNOWN";
  d["node_id"] = HexOf(info.node_id());
  d["node_ip"] = info.node_ip();
  d["pid"] = info.pid();
  d["num_restarts"] = info.num_restarts();
  d["max_restarts"] = info.max_restarts();
  d["death_cause"] = info.death_cause().message();
  d["pending_reason"] = info.pending_reason();
  return d;
}

Deadline After(double timeout_s) { return Deadline::FromSeconds(timeout_s); }

}  // namespace

void RegisterState(py::module_& m) {
  py::class_<cluster::HeadClient>(m, "HeadClient")
      .def_static(
          "connect",
          [](const std::string& address, const std::string& token) {
            StatusOr<std::unique_ptr<cluster::HeadClient>> client = Status::Internal("unset");
            {
              py::gil_scoped_release release;
              client = cluster::HeadClient::Connect(address, token);
            }
            return ValueOrThrow(std::move(client));
          },
          py::arg("address"), py::arg("token"),
          "Connects to the Head at `address` ('IP:PORT' of a cluster, or an embedded session's "
          "'unix:@...') with the cluster token.")
      .def(
          "nodes",
          [](cluster::HeadClient& c, double timeout_s) {
            StatusOr<std::vector<proto::NodeInfo>> nodes = Status::Internal("unset");
            {
              py::gil_scoped_release release;
              nodes = c.Nodes(After(timeout_s));
            }
            py::list out;
            for (const auto& n : ValueOrThrow(std::move(nodes))) out.append(NodeInfoToDict(n));
            return out;
          },
          py::arg("timeout_s") = 10.0, "The nodes, as ferry.nodes() lists them.")
      .def(
          "actors",
          [](cluster::HeadClient& c, double timeout_s) {
            StatusOr<std::vector<proto::ActorInfo>> actors = Status::Internal("unset");
            {
              py::gil_scoped_release release;
              actors = c.Actors(After(timeout_s));
            }
            py::list out;
            for (const auto& a : ValueOrThrow(std::move(actors))) out.append(ActorRow(a));
            return out;
          },
          py::arg("timeout_s") = 10.0,
          "Every actor: actor_id, class_name, name, state, node_id, node_ip, pid, num_restarts, "
          "max_restarts, death_cause, pending_reason.");
}

}  // namespace ferry::python
