#include "py_cluster.h"

#include <pybind11/stl.h>

#include "ferry/cluster/node_service.h"
#include "py_errors.h"

namespace py = pybind11;

namespace ferry::python {
namespace {

cluster::ResourceMap ResourcesFrom(const py::dict& options) {
  cluster::ResourceMap out;
  if (options.contains("resources") && !options["resources"].is_none()) {
    out = options["resources"].cast<cluster::ResourceMap>();
  }
  auto number = [&](const char* key, const char* name) {
    if (options.contains(key) && !options[key].is_none()) out[name] = options[key].cast<double>();
  };
  number("num_cpus", cluster::kCpu);
  number("num_gpus", cluster::kGpu);
  return out;
}

std::string StringOr(const py::dict& options, const char* key) {
  if (!options.contains(key) || options[key].is_none()) return "";
  return options[key].cast<std::string>();
}

py::dict ResourcesToDict(const proto::ResourceSet& set) {
  py::dict d;
  for (const auto& [name, amount] : cluster::FromProto(set)) d[py::str(name)] = amount;
  return d;
}

// One `ferry start` daemon; Python keeps it alive and calls wait() in a loop.
class PyNode {
 public:
  explicit PyNode(std::unique_ptr<cluster::NodeService> node) : node_(std::move(node)) {}
  cluster::NodeService& node() { return *node_; }

 private:
  std::unique_ptr<cluster::NodeService> node_;
};

}  // namespace

cluster::DriverOptions DriverOptionsFrom(const py::dict& options) {
  cluster::DriverOptions o;
  o.address = StringOr(options, "address");
  o.token = StringOr(options, "token");
  o.node_ip = StringOr(options, "node_ip");
  o.resources = ResourcesFrom(options);
  return o;
}

void SetPlacementOptions(const py::dict& options, proto::ActorOptions* out) {
  if (options.contains("resources") && !options["resources"].is_none()) {
    for (const auto& [name, amount] : options["resources"].cast<cluster::ResourceMap>()) {
      (*out->mutable_resources())[name] = amount;
    }
  }
  if (!options.contains("scheduling_strategy") || options["scheduling_strategy"].is_none()) return;
  py::object strategy = options["scheduling_strategy"];
  proto::SchedulingStrategy* s = out->mutable_scheduling();
  if (py::isinstance<py::str>(strategy)) {
    std::string name = strategy.cast<std::string>();
    if (name == "SPREAD") s->set_kind(proto::SchedulingStrategy::SPREAD);
    return;  // "DEFAULT"
  }
  // ("node_affinity", node id hex, soft)
  auto tuple = strategy.cast<py::tuple>();
  auto node = NodeId::FromHex(tuple[1].cast<std::string>());
  if (!node.ok())
    throw py::value_error("NodeAffinitySchedulingStrategy: " + node.status().message());
  s->set_kind(proto::SchedulingStrategy::NODE_AFFINITY);
  s->set_node_id(node->Binary());
  s->set_soft(tuple[2].cast<bool>());
}

py::dict NodeInfoToDict(const proto::NodeInfo& node) {
  py::dict d;
  auto id = NodeId::FromBinary(node.node_id());
  d["NodeID"] = id.ok() ? id->Hex() : std::string();
  d["Alive"] = node.alive();
  d["NodeManagerAddress"] = node.node_ip();
  d["Resources"] = ResourcesToDict(node.total());
  d["AvailableResources"] = ResourcesToDict(node.available());
  d["IsHead"] = node.is_head();
  d["NumActors"] = node.num_actors();
  d["DeathCause"] = node.death_cause();
  return d;
}

void RegisterCluster(py::module_& m) {
  py::class_<PyNode, std::shared_ptr<PyNode>>(m, "Node")
      .def_static("start",
                  [](const py::dict& options) {
                    cluster::NodeServiceOptions o;
                    o.head = options.contains("head") && options["head"].cast<bool>();
                    o.head_address = StringOr(options, "address");
                    if (options.contains("port") && !options["port"].is_none())
                      o.port = options["port"].cast<int>();
                    o.node_ip = StringOr(options, "node_ip");
                    o.token = StringOr(options, "token");
                    o.resources = ResourcesFrom(options);
                    o.log_dir = StringOr(options, "log_dir");
                    StatusOr<std::unique_ptr<cluster::NodeService>> node = Status::Internal(
                        "unset");
                    {
                      py::gil_scoped_release release;
                      node = cluster::NodeService::Start(std::move(o));
                    }
                    return std::make_shared<PyNode>(ValueOrThrow(std::move(node)));
                  })
      .def_property_readonly("address", [](PyNode& n) { return n.node().head_address(); })
      .def_property_readonly("token", [](PyNode& n) { return n.node().token(); })
      .def_property_readonly("node_id", [](PyNode& n) { return n.node().node_id().Hex(); })
      .def_property_readonly("node_ip", [](PyNode& n) { return n.node().node_ip(); })
      .def("wait",
           [](PyNode& n, const py::object& timeout) -> py::object {
             std::optional<std::string> why;
             {
               py::gil_scoped_release release;
               why = n.node().Wait(timeout.is_none()
                                       ? Deadline::Never()
                                       : Deadline::FromSeconds(timeout.cast<double>()));
             }
             if (!why) return py::none();
             return py::str(*why);
           })
      .def("stop", [](PyNode& n) {
        py::gil_scoped_release release;
        n.node().Shutdown();
      });
}

}  // namespace ferry::python
