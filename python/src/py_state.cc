#include "py_state.h"

#include <google/protobuf/message.h>
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

py::object MessageToDict(const google::protobuf::Message& message);

// One value of `field` (element `index` of a repeated one, else -1).
py::object FieldValue(const google::protobuf::Message& m,
                      const google::protobuf::FieldDescriptor* f, int index) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = m.GetReflection();
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return py::int_(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return py::int_(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return py::int_(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return py::int_(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return py::float_(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return py::float_(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return py::bool_(rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f));
    case FieldDescriptor::CPPTYPE_ENUM:
      return py::str((rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f))->name());
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string v = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
      if (f->type() == FieldDescriptor::TYPE_BYTES) return py::str(HexOf(v));
      return py::str(v);
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageToDict(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f));
  }
  return py::none();
}

// Every field of `message` (unset ones with their defaults), by field name;
// ids (bytes) in hex.
py::object MessageToDict(const google::protobuf::Message& message) {
  py::dict d;
  const google::protobuf::Descriptor* desc = message.GetDescriptor();
  const google::protobuf::Reflection* r = message.GetReflection();
  for (int i = 0; i < desc->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = desc->field(i);
    if (f->is_repeated()) {
      py::list items;
      for (int j = 0; j < r->FieldSize(message, f); ++j) items.append(FieldValue(message, f, j));
      d[py::str(f->name())] = std::move(items);
    } else {
      d[py::str(f->name())] = FieldValue(message, f, -1);
    }
  }
  return std::move(d);
}

std::vector<proto::ProcessInfo> ProcessesFrom(const py::list& rows) {
  std::vector<proto::ProcessInfo> out;
  for (const py::handle& row : rows) {
    proto::ProcessInfo& p = out.emplace_back();
    p.set_address(row["address"].cast<std::string>());
    p.set_pid(row["pid"].cast<int>());
  }
  return out;
}

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
          "max_restarts, death_cause, pending_reason.")
      .def(
          "processes",
          [](cluster::HeadClient& c, double timeout_s) {
            StatusOr<std::vector<proto::ProcessInfo>> processes = Status::Internal("unset");
            {
              py::gil_scoped_release release;
              processes = c.Processes(After(timeout_s));
            }
            py::list out;
            for (const auto& p : ValueOrThrow(std::move(processes))) out.append(MessageToDict(p));
            return out;
          },
          py::arg("timeout_s") = 10.0,
          "The drivers and running workers (ProcessInfo in ferry.proto, as dicts): kind, "
          "worker_id, address, pid, node_id, node_ip, actor_id, class_name.")
      .def(
          "states",
          [](cluster::HeadClient& c, const py::list& processes, uint32_t max_objects,
             uint32_t max_transfers, bool timeline, double timeout_s) {
            std::vector<proto::ProcessInfo> asked = ProcessesFrom(processes);
            proto::StateRequest request;
            request.set_max_objects(max_objects);
            request.set_max_transfers(max_transfers);
            request.set_timeline(timeline);
            std::vector<StatusOr<proto::ProcessState>> states;
            {
              py::gil_scoped_release release;
              states = c.States(asked, request, After(timeout_s));
            }
            py::list out;
            for (size_t i = 0; i < states.size(); ++i) {
              if (states[i].ok()) {
                out.append(MessageToDict(*states[i]));
              } else {
                py::dict failed;
                failed["address"] = asked[i].address();
                failed["pid"] = asked[i].pid();
                failed["error"] = states[i].status().ToString();
                out.append(std::move(failed));
              }
            }
            return out;
          },
          py::arg("processes"), py::arg("max_objects") = 0, py::arg("max_transfers") = 0,
          py::arg("timeline") = false, py::arg("timeout_s") = 10.0,
          "Asks each of `processes` (rows of processes()) what it holds, all at once: one "
          "ProcessState dict per process, in order, or {address, pid, error} for one that "
          "gave no answer (it exited meanwhile). With timeline, their task and call spans "
          "too.");
}

}  // namespace ferry::python
