#include "py_runtime.h"

#include <pybind11/stl.h>

#include "ferry/common/config.h"
#include "ferry/core/error_value.h"
#include "ferry/transport/transport_table.h"
#include "py_buffers.h"
#include "py_cluster.h"
#include "py_errors.h"
#include "py_executor.h"
#include "py_object_ref.h"
#include "py_tensors.h"

namespace py = pybind11;

namespace ferry::python {
namespace {

// Borrowed views of a Python (data, [buffers]) pair, valid while `infos`
// lives, and the ObjectRefs pickled inside the value (`contained`).
core::SerializedValue ToSerialized(const std::string& format, const py::buffer& data,
                                   const py::list& buffers, std::vector<py::buffer_info>& infos,
                                   const py::list& contained = py::list()) {
  core::SerializedValue v;
  v.format = format;
  if (!contained.empty()) v.contained_refs = RefsFromPython(contained);
  infos.push_back(data.request());
  v.data = std::string_view(static_cast<const char*>(infos.back().ptr),
                            static_cast<size_t>(infos.back().size * infos.back().itemsize));
  infos.reserve(buffers.size() + 1);
  for (py::handle b : buffers) {
    infos.push_back(b.cast<py::buffer>().request());
    const auto& info = infos.back();
    v.buffers.emplace_back(static_cast<const uint8_t*>(info.ptr),
                           static_cast<size_t>(info.size * info.itemsize));
  }
  // Re-point data: reserve() above may have moved the first element.
  v.data = std::string_view(static_cast<const char*>(infos.front().ptr), v.data.size());
  return v;
}

Deadline DeadlineFrom(const py::object& timeout) {
  if (timeout.is_none()) return Deadline::Never();
  return Deadline::FromSeconds(timeout.cast<double>());
}

std::shared_ptr<core::CoreWorker> Core(const PyRuntime& rt) {
  if (!rt.core()) throw py::value_error("ferry is not running (call ferry.init())");
  return rt.core();
}

py::dict InfoToDict(const proto::ActorInfo& info) {
  py::dict d;
  static const char* kStates[] = {"PENDING", "ALIVE", "DEAD", "RESTARTING"};
  d["state"] = static_cast<size_t>(info.state()) < std::size(kStates) ? kStates[info.state()]
                                                                      : "UNKNOWN";
  d["actor_id"] = py::bytes(info.actor_id());
  d["handle_meta"] = py::bytes(info.handle_meta());
  d["address"] = info.address();
  d["pid"] = info.pid();
  d["death_cause"] = info.death_cause().message();
  d["class_name"] = info.class_name();
  d["name"] = info.name();
  return d;
}

}  // namespace

// Both start with the GIL released and raise (which needs it) after.
std::shared_ptr<PyRuntime> PyRuntime::StartDriver(const cluster::DriverOptions& options) {
  StatusOr<cluster::DriverRuntime> started = Status::Internal("unset");
  {
    py::gil_scoped_release release;
    started = cluster::StartDriverRuntime(options);
  }
  std::shared_ptr<PyRuntime> rt(new PyRuntime());
  rt->rt_ = ValueOrThrow(std::move(started));
  return rt;
}

std::shared_ptr<PyRuntime> PyRuntime::StartWorker() {
  StatusOr<std::shared_ptr<core::CoreWorker>> started = Status::Internal("unset");
  {
    py::gil_scoped_release release;
    started = cluster::StartWorkerRuntime();
  }
  std::shared_ptr<PyRuntime> rt(new PyRuntime());
  rt->rt_.core = ValueOrThrow(std::move(started));
  return rt;
}

PyRuntime::~PyRuntime() { Shutdown(); }

void PyRuntime::Shutdown() {
  ready_->Close();
  rt_.Shutdown();
}

void RegisterRuntime(py::module_& m) {
  py::class_<PyRuntime, std::shared_ptr<PyRuntime>>(m, "Runtime")
      .def_static("start_driver",
                  [](const py::dict& options) {
                    return PyRuntime::StartDriver(DriverOptionsFrom(options));
                  })
      .def_static("start_worker", [] { return PyRuntime::StartWorker(); })
      .def("shutdown",
           [](PyRuntime& rt) {
             py::gil_scoped_release release;
             rt.Shutdown();
           })
      .def_property_readonly("running", [](const PyRuntime& rt) { return rt.core() != nullptr; })
      .def_property_readonly("worker_id",
                             [](const PyRuntime& rt) { return Core(rt)->worker_id().Hex(); })
      .def_property_readonly("address", [](const PyRuntime& rt) { return Core(rt)->address(); })
      .def_property_readonly("session", [](const PyRuntime& rt) { return Core(rt)->session(); })
      .def_property_readonly("head_address",
                             [](const PyRuntime& rt) { return Core(rt)->head_address(); })
      .def_property_readonly("token", [](const PyRuntime& rt) { return Core(rt)->token(); })
      .def_property_readonly("is_driver", [](const PyRuntime& rt) { return Core(rt)->is_driver(); })
      .def_property_readonly("node_id",
                             [](const PyRuntime& rt) {
                               return rt.head() ? rt.head()->local_node_id().Hex()
                                                : EnvString("FERRY_NODE_ID", "");
                             })
      .def("nodes",
           [](PyRuntime& rt) {
             StatusOr<std::vector<proto::NodeInfo>> nodes = Status::Internal("unset");
             {
               py::gil_scoped_release release;
               nodes = rt.driver().Nodes();
             }
             py::list out;
             for (const auto& n : ValueOrThrow(std::move(nodes))) out.append(NodeInfoToDict(n));
             return out;
           })
      .def("worker_pids",
           [](const PyRuntime& rt) {
             return rt.head() ? rt.head()->WorkerPids() : std::vector<int>{};
           })
      .def("create_actor",
           [](const PyRuntime& rt, const std::string& class_name, const py::dict& opts,
              const std::vector<std::string>& worker_command, const py::buffer& data,
              const py::list& buffers, const py::list& refs, const py::list& contained) {
             auto core = Core(rt);
             core::ActorCreation c;
             c.options.set_class_name(class_name);
             if (opts.contains("name") && !opts["name"].is_none())
               c.options.set_name(opts["name"].cast<std::string>());
             if (opts.contains("num_cpus") && !opts["num_cpus"].is_none()) {
               c.options.set_num_cpus(opts["num_cpus"].cast<double>());
               c.options.set_has_num_cpus(true);
             }
             SetPlacementOptions(opts, &c.options);
             if (opts.contains("num_gpus") && !opts["num_gpus"].is_none())
               c.options.set_num_gpus(opts["num_gpus"].cast<double>());
             if (opts.contains("max_concurrency"))
               c.options.set_max_concurrency(opts["max_concurrency"].cast<int>());
             if (opts.contains("max_restarts") && !opts["max_restarts"].is_none())
               c.options.set_max_restarts(opts["max_restarts"].cast<int>());
             if (opts.contains("handle_meta"))
               c.options.set_handle_meta(opts["handle_meta"].cast<std::string>());
             if (opts.contains("is_asyncio")) c.is_asyncio = opts["is_asyncio"].cast<bool>();
             c.worker_command = worker_command;
             std::vector<py::buffer_info> infos;
             c.args.structure = ToSerialized("pickle5", data, buffers, infos, contained);
             c.args.refs = RefsFromPython(refs);
             StatusOr<ActorId> id = Status::Internal("unset");
             {
               py::gil_scoped_release release;
               id = core->CreateActor(c);
             }
             return py::bytes(ValueOrThrow(std::move(id)).Binary());
           })
      .def("submit_task",
           [](const PyRuntime& rt, const std::string& function_name, const py::dict& opts,
              const std::vector<std::string>& worker_command, const py::buffer& data,
              const py::list& buffers, const py::list& refs, const py::list& contained,
              int num_returns, int max_retries, const py::bytes& retry_exceptions) {
             auto core = Core(rt);
             core::TaskCall call;
             call.method = function_name;
             call.num_returns = num_returns;
             call.max_retries = max_retries;
             call.retry_exceptions = retry_exceptions;
             proto::LeaseWorker lease;
             proto::ActorOptions* options = lease.mutable_options();
             if (opts.contains("num_cpus") && !opts["num_cpus"].is_none()) {
               options->set_num_cpus(opts["num_cpus"].cast<double>());
               options->set_has_num_cpus(true);
             }
             if (opts.contains("num_gpus") && !opts["num_gpus"].is_none())
               options->set_num_gpus(opts["num_gpus"].cast<double>());
             SetPlacementOptions(opts, options);
             for (const auto& arg : worker_command) lease.add_worker_command(arg);
             lease.set_language("python");
             std::vector<py::buffer_info> infos;
             call.args.structure = ToSerialized("pickle5", data, buffers, infos, contained);
             call.args.refs = RefsFromPython(refs);
             StatusOr<std::vector<core::ObjectRef>> out = Status::Internal("unset");
             {
               py::gil_scoped_release release;
               out = core->SubmitTask(call, std::move(lease));
             }
             py::list result;
             for (auto& ref : ValueOrThrow(std::move(out)))
               result.append(WrapRef(std::move(ref), core));
             return result;
           })
      .def("submit",
           [](const PyRuntime& rt, const py::bytes& actor_id, const std::string& method,
              const py::buffer& data, const py::list& buffers, const py::list& refs,
              const py::list& contained, int num_returns, const std::string& tensor_transport,
              int max_retries, const py::bytes& retry_exceptions) {
             auto core = Core(rt);
             ActorId actor = ValueOrThrow(ActorId::FromBinary(std::string(actor_id)));
             core::TaskCall call;
             call.method = method;
             call.num_returns = num_returns;
             call.tensor_transport = tensor_transport;
             call.max_retries = max_retries;
             call.retry_exceptions = retry_exceptions;
             std::vector<py::buffer_info> infos;
             call.args.structure = ToSerialized("pickle5", data, buffers, infos, contained);
             call.args.refs = RefsFromPython(refs);
             StatusOr<std::vector<core::ObjectRef>> out = Status::Internal("unset");
             std::vector<std::string> warnings;
             if (call.args.structure.data.size() > 64 * 1024 ||
                 !call.args.structure.buffers.empty()) {
               py::gil_scoped_release release;  // large arguments are copied to shared memory
               out = core->SubmitActorTask(actor, call, &warnings);
             } else {
               out = core->SubmitActorTask(actor, call, &warnings);
             }
             py::list result;
             for (auto& ref : ValueOrThrow(std::move(out)))
               result.append(WrapRef(std::move(ref), core, call.tensor_transport));
             return py::make_tuple(result, warnings);
           })
      .def(
          "get",
          [](const PyRuntime& rt, const py::list& refs, const py::object& timeout, bool pull) {
            auto core = Core(rt);
            std::vector<core::ObjectRef> ids = RefsFromPython(refs);
            Deadline deadline = DeadlineFrom(timeout);
            std::vector<std::shared_ptr<object::ReadableValue>> opened;
            std::vector<core::ValuePtr> values;
            // With `pull`: the tensors of one-sided RDT values, pulled here
            // all at once (concurrently), by index into `values`.
            std::vector<size_t> pulled_at;
            std::vector<std::vector<tensor::Tensor>> pulled;
            Status error;
            {
              py::gil_scoped_release release;
              auto got = core->Get(ids, deadline);
              if (!got.ok()) {
                error = got.status();
              } else {
                values = std::move(got).value();
                std::vector<ObjectId> pull_ids;
                std::vector<core::ValuePtr> pull_values;
                for (size_t i = 0; i < values.size(); ++i) {
                  const auto& v = values[i];
                  if (!core::ValueStatus(*v).ok()) {
                    opened.push_back(nullptr);
                    continue;
                  }
                  auto r = object::ReadableValue::Open(v);
                  if (!r.ok()) {
                    error = r.status();
                    break;
                  }
                  opened.push_back(std::move(r).value());
                  if (pull && v->has_rdt() && transport::IsOneSided(v->rdt().transport())) {
                    pulled_at.push_back(i);
                    pull_ids.push_back(ids[i].id);
                    pull_values.push_back(v);
                  }
                }
                if (error.ok() && !pull_ids.empty()) {
                  auto p = core->tensor_holder().Pull(pull_ids, pull_values, deadline);
                  if (p.ok()) {
                    pulled = std::move(p).value();
                  } else {
                    error = p.status();
                  }
                }
              }
            }
            CheckOk(error);
            std::vector<py::object> tensors_of(values.size(), py::none());
            for (size_t k = 0; k < pulled_at.size(); ++k) {
              tensors_of[pulled_at[k]] = TensorsToPython(pulled[k]);
            }
            // Each item: (format, data, buffers, code, message, rdt or None,
            // pulled tensors or None).
            py::list out;
            for (size_t i = 0; i < values.size(); ++i) {
              Status s = core::ValueStatus(*values[i]);
              if (!s.ok()) {
                out.append(py::make_tuple(values[i]->format(), py::bytes(values[i]->inline_data()),
                                          py::list(), static_cast<int>(s.code()), s.message(),
                                          py::none(), py::none()));
                continue;
              }
              py::tuple t = ValueToPython(opened[i]);
              py::object rdt = values[i]->has_rdt() ? py::object(RdtToPython(values[i]->rdt()))
                                                    : py::object(py::none());
              out.append(py::make_tuple(t[0], t[1], t[2], 0, "", rdt, tensors_of[i]));
            }
            return out;
          },
          py::arg("refs"), py::arg("timeout"), py::arg("pull") = false)
      .def("put",
           [](const PyRuntime& rt, const py::buffer& data, const py::list& buffers,
              const py::list& contained) {
             auto core = Core(rt);
             std::vector<py::buffer_info> infos;
             core::SerializedValue v = ToSerialized("pickle5", data, buffers, infos, contained);
             StatusOr<core::ObjectRef> ref = Status::Internal("unset");
             {
               py::gil_scoped_release release;
               ref = core->Put(v);
             }
             return WrapRef(ValueOrThrow(std::move(ref)), core);
           })
      .def("put_tensors",
           [](const PyRuntime& rt, const py::buffer& data, const py::list& buffers,
              const std::string& transport, const py::list& exported, const py::list& contained) {
             auto core = Core(rt);
             std::vector<py::buffer_info> infos;
             core::SerializedValue v = ToSerialized("pickle5", data, buffers, infos, contained);
             std::vector<tensor::Tensor> tensors = ValueOrThrow(TensorsFromPython(exported));
             StatusOr<core::ObjectRef> ref = Status::Internal("unset");
             {
               py::gil_scoped_release release;
               ref = core->PutTensors(v, std::move(tensors), transport);
             }
             return WrapRef(ValueOrThrow(std::move(ref)), core, transport);
           })
      .def("transfer_log",
           [](const PyRuntime& rt) {
             py::list out;
             for (const core::TransferRecord& r :
                  Core(rt)->tensor_holder().transfer_log().Recent()) {
               py::dict d;
               d["object_id"] = r.object_id.Hex();
               d["transport"] = r.transport;
               d["direction"] = r.direction;
               d["peer"] = r.peer;
               d["bytes"] = r.bytes;
               d["micros"] = r.micros;
               d["pooled"] = r.pooled;
               d["reason"] = r.reason;
               d["error"] = r.error.empty() ? py::object(py::none()) : py::object(py::str(r.error));
               out.append(d);
             }
             return out;
           })
      .def("wait",
           [](const PyRuntime& rt, const py::list& refs, size_t num_returns,
              const py::object& timeout) {
             auto core = Core(rt);
             std::vector<core::ObjectRef> ids = RefsFromPython(refs);
             Deadline deadline = DeadlineFrom(timeout);
             StatusOr<std::vector<bool>> flags = Status::Internal("unset");
             {
               py::gil_scoped_release release;
               flags = core->Wait(ids, num_returns, deadline);
             }
             return ValueOrThrow(std::move(flags));
           })
      .def("kill",
           [](const PyRuntime& rt, const py::bytes& actor_id, bool no_restart) {
             auto core = Core(rt);
             ActorId actor = ValueOrThrow(ActorId::FromBinary(std::string(actor_id)));
             Status s;
             {
               py::gil_scoped_release release;
               s = core->KillActor(actor, no_restart);
             }
             CheckOk(s);
           })
      .def(
          "actor_info",
          [](const PyRuntime& rt, const py::bytes& actor_id, bool wait) {
            auto core = Core(rt);
            ActorId actor = ValueOrThrow(ActorId::FromBinary(std::string(actor_id)));
            StatusOr<proto::ActorInfo> info = Status::Internal("unset");
            {
              py::gil_scoped_release release;
              info = core->GetActorInfo(actor, wait,
                                        Deadline::After(Config::Get().worker_start_timeout));
            }
            return InfoToDict(ValueOrThrow(std::move(info)));
          },
          py::arg("actor_id"), py::arg("wait") = false)
      .def("get_named_actor_info",
           [](const PyRuntime& rt, const std::string& name) -> py::object {
             auto core = Core(rt);
             StatusOr<proto::ActorInfo> info = Status::Internal("unset");
             {
               py::gil_scoped_release release;
               info = core->GetNamedActorInfo(name,
                                              Deadline::After(Config::Get().rpc_connect_timeout));
             }
             if (!info.ok() && info.status().code() == StatusCode::kNotFound) return py::none();
             return InfoToDict(ValueOrThrow(std::move(info)));
           })
      .def(
          "make_ref",
          [](const PyRuntime& rt, const py::bytes& id, const std::string& owner_address,
             const py::bytes& owner_id, const std::string& tensor_transport) {
            auto core = Core(rt);
            core::ObjectRef ref;
            ref.id = ValueOrThrow(ObjectId::FromBinary(std::string(id)));
            ref.owner_address = owner_address;
            ref.owner_id = ValueOrThrow(WorkerId::FromBinary(std::string(owner_id)));
            // A ref out of a serialized value: (handle, whether it must be
            // registered with its owner, by register_borrows).
            bool must_register = core->AddDeserializedRef(ref);
            return py::make_tuple(WrapRef(std::move(ref), core, tensor_transport), must_register);
          },
          py::arg("object_id"), py::arg("owner_address"), py::arg("owner_id"),
          py::arg("tensor_transport") = "")
      .def("watch_ready", [](const PyRuntime& rt, const PyObjectRef& ref,
                             uint64_t token) { rt.ready().Watch(*Core(rt), ref.ref(), token); })
      .def("next_ready",
           [](const PyRuntime& rt) -> py::object {
             std::optional<std::vector<uint64_t>> tokens;
             {
               py::gil_scoped_release release;
               tokens = rt.ready().Next();
             }
             if (!tokens) return py::none();
             return py::cast(*tokens);
           })
      .def("register_borrows",
           [](const PyRuntime& rt, const py::list& refs) {
             auto core = Core(rt);
             std::vector<core::ObjectRef> borrowed = RefsFromPython(refs);
             Status s;
             {
               py::gil_scoped_release release;
               s = core->RegisterBorrows(borrowed,
                                         Deadline::After(Config::Get().rpc_connect_timeout));
             }
             CheckOk(s);
           })
      .def("stats",
           [](const PyRuntime& rt) {
             auto s = Core(rt)->GetStats();
             py::dict d;
             d["owned_objects"] = s.owned_objects;
             d["stored_values"] = s.stored_values;
             d["local_segments"] = s.local_segments;
             d["borrowed_objects"] = s.borrowed_objects;
             d["value_holds"] = s.value_holds;
             d["borrow_requests"] = s.borrow_requests;
             return d;
           })
      .def("fetch_tensors",
           [](const PyRuntime& rt, const py::object& ref_obj, const py::object& timeout) {
             auto core = Core(rt);
             core::ObjectRef ref = ref_obj.cast<PyObjectRef&>().ref();
             Deadline deadline = DeadlineFrom(timeout);
             StatusOr<std::shared_ptr<object::ReadableValue>> fetched = Status::Internal("unset");
             {
               py::gil_scoped_release release;
               auto values = core->Get(std::span<const core::ObjectRef>(&ref, 1), deadline);
               if (!values.ok()) {
                 fetched = values.status();
               } else if (Status s = core::ValueStatus(*(*values)[0]); !s.ok()) {
                 fetched = s;
               } else {
                 fetched = core->tensor_holder().FetchToObjectStore(ref.id, *(*values)[0],
                                                                    deadline);
               }
             }
             py::tuple t = ValueToPython(ValueOrThrow(std::move(fetched)));
             return py::object(t[2]);  // (a tuple accessor would dangle)
           })
      .def("wait_tensor_freed",
           [](const PyRuntime& rt, uintptr_t data_ptr, const py::object& timeout) {
             auto core = Core(rt);
             Status s;
             {
               py::gil_scoped_release release;
               s = core->tensor_store().WaitFreed(reinterpret_cast<const void*>(data_ptr),
                                                  DeadlineFrom(timeout));
             }
             CheckOk(s);
           })
      .def("tensor_store_stats",
           [](const PyRuntime& rt) {
             auto st = Core(rt)->tensor_store().GetStats();
             py::dict d;
             d["num_objects"] = st.num_objects;
             d["num_tensors"] = st.num_tensors;
             d["bytes"] = st.bytes;
             return d;
           })
      .def("create_collective_group",
           [](const PyRuntime& rt, const std::string& name, const std::string& backend,
              const std::vector<py::bytes>& actor_ids) {
             auto core = Core(rt);
             std::vector<ActorId> actors;
             for (const auto& b : actor_ids)
               actors.push_back(ValueOrThrow(ActorId::FromBinary(std::string(b))));
             Status s;
             {
               py::gil_scoped_release release;
               s = core->transfer_owner().CreateGroup(name, backend, actors);
             }
             CheckOk(s);
           })
      .def("destroy_collective_group",
           [](const PyRuntime& rt, const std::string& name) {
             auto core = Core(rt);
             Status s;
             {
               py::gil_scoped_release release;
               s = core->transfer_owner().DestroyGroup(name);
             }
             CheckOk(s);
           })
      .def("collective_groups",
           [](const PyRuntime& rt) {
             py::list out;
             for (const auto& g : Core(rt)->transfer_owner().Groups()) {
               py::list members;
               for (const auto& a : g.members) members.append(py::bytes(a.Binary()));
               out.append(py::make_tuple(g.name, g.backend, members));
             }
             return out;
           })
      .def(
          "run_worker",
          [](const PyRuntime& rt, py::object execute, py::object execute_async) {
            auto core = Core(rt);
            auto executor = std::make_unique<PyExecutor>(core.get(), std::move(execute),
                                                         std::move(execute_async));
            Status s;
            {
              py::gil_scoped_release release;
              s = core->RunActorWorker(executor.get());
            }
            CheckOk(s);
          },
          py::arg("execute"), py::arg("execute_async") = py::none());
}

}  // namespace ferry::python
