#include "py_executor.h"

#include "ferry/core/error_value.h"
#include "py_buffers.h"
#include "py_object_ref.h"
#include "py_tensors.h"

namespace py = pybind11;

namespace ferry::python {

PyExecutor::~PyExecutor() {
  py::gil_scoped_acquire gil;
  fn_ = py::object();
}

std::vector<proto::ObjectValueProto> PyExecutor::Execute(const proto::TaskSpec& spec,
                                                         std::vector<core::ExecArg> args) {
  std::vector<proto::ObjectValueProto> out;
  py::gil_scoped_acquire gil;
  try {
    py::list py_args, arg_ids;
    for (const auto& a : args) {
      py::tuple v = ValueToPython(a.value);
      py_args.append(py::make_tuple(v[0], v[1], v[2], TensorsToPython(a.tensors)));
      arg_ids.append(py::bytes(spec.args(static_cast<int>(py_args.size() - 1)).object_id()));
    }
    args.clear();
    py::list return_ids;
    for (const auto& id : spec.return_ids()) return_ids.append(py::bytes(id));
    py::object results = fn_(spec.method(), spec.is_creation(), return_ids, py_args, arg_ids,
                             spec.tensor_transport(), py::bytes(spec.retry_exceptions()));
    py_args = py::list();
    int i = 0;
    for (py::handle r : results) {
      const std::string id = i < spec.return_ids_size() ? spec.return_ids(i)
                                                        : ObjectId::Random().Binary();
      out.push_back(StoreResult(id, r));
      ++i;
    }
  } catch (py::error_already_set& e) {
    std::string message = std::string("internal error in the Python worker: ") + e.what();
    out.assign(std::max(1, spec.return_ids_size()),
               core::MakeErrorValue(Status::Internal(message)));
  } catch (std::exception& e) {
    out.assign(std::max(1, spec.return_ids_size()),
               core::MakeErrorValue(Status::Internal(std::string("worker error: ") + e.what())));
  }
  return out;
}

proto::ObjectValueProto PyExecutor::StoreResult(const std::string& return_id,
                                                const py::handle& result) {
  auto tuple = result.cast<py::tuple>();
  std::string format = tuple[0].cast<std::string>();
  int code = tuple[3].cast<int>();
  py::buffer data_obj = tuple[1].cast<py::buffer>();
  py::buffer_info data = data_obj.request();
  std::string_view data_view(static_cast<const char*>(data.ptr),
                             static_cast<size_t>(data.size * data.itemsize));
  if (code != 0) {
    proto::ObjectValueProto error = core::MakeErrorValue(
        Status(static_cast<StatusCode>(code), tuple[4].cast<std::string>()), format, data_view);
    // (format, data, buffers, code, message[, retryable])
    if (tuple.size() > 5) error.set_retryable(tuple[5].cast<bool>());
    return error;
  }
  std::vector<py::buffer_info> infos;
  core::SerializedValue value;
  value.format = format;
  value.data = data_view;
  // (format, data, buffers, code, message, rdt or None, contained refs)
  if (tuple.size() > 6) value.contained_refs = RefsFromPython(tuple[6]);
  for (py::handle b : tuple[2]) {
    infos.push_back(b.cast<py::buffer>().request());
    const auto& info = infos.back();
    value.buffers.emplace_back(static_cast<const uint8_t*>(info.ptr),
                               static_cast<size_t>(info.size * info.itemsize));
  }
  auto id = ObjectId::FromBinary(return_id);
  if (!id.ok()) return core::MakeErrorValue(id.status());
  StatusOr<proto::ObjectValueProto> stored = Status::Internal("unset");
  {
    py::gil_scoped_release release;  // the copy into shared memory needs no GIL
    stored = core_->WriteValue(*id, value);
  }
  if (!stored.ok())
    return core::MakeErrorValue(stored.status().WithContext("storing a return value"));
  if (tuple.size() > 5 && !tuple[5].is_none()) {
    Status s = StoreRdt(*id, tuple[5], &stored.value());
    if (!s.ok()) return core::MakeErrorValue(s.WithContext("keeping the returned tensors"));
  }
  return std::move(stored).value();
}

Status PyExecutor::StoreRdt(const ObjectId& id, const py::handle& rdt,
                            proto::ObjectValueProto* value) {
  auto info = rdt.cast<py::tuple>();
  proto::RdtInfo* out = value->mutable_rdt();
  out->set_transport(info[0].cast<std::string>());
  FERRY_ASSIGN_OR_RETURN(std::vector<tensor::Tensor> tensors, TensorsFromPython(info[1]));
  for (const tensor::Tensor& t : tensors) *out->add_tensors() = t.meta();
  return core_->StoreTensors(id, std::move(tensors), out);
}

}  // namespace ferry::python
