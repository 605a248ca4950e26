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
  fn_async_ = py::object();
}

namespace {

std::vector<proto::ObjectValueProto> ErrorResults(const proto::TaskSpec& spec, const Status& s) {
  return std::vector<proto::ObjectValueProto>(std::max(1, spec.return_ids_size()),
                                              core::MakeErrorValue(s));
}

Status PythonError(const std::exception& e) {
  return Status::Internal(std::string("internal error in the Python worker: ") + e.what());
}

}  // namespace

py::tuple PyExecutor::CallArgsToPython(const proto::TaskSpec& spec,
                                       std::vector<core::ExecArg>& args) {
  py::list py_args, arg_ids;
  for (const auto& a : args) {
    py::tuple v = ValueToPython(a.value);
    py_args.append(py::make_tuple(v[0], v[1], v[2], TensorsToPython(a.tensors)));
    arg_ids.append(py::bytes(spec.args(static_cast<int>(py_args.size() - 1)).object_id()));
  }
  args.clear();
  py::list return_ids;
  for (const auto& id : spec.return_ids()) return_ids.append(py::bytes(id));
  return py::make_tuple(py_args, arg_ids, return_ids);
}

template <class Ids>
std::vector<proto::ObjectValueProto> PyExecutor::StoreResults(const Ids& return_ids,
                                                              const py::handle& results) {
  std::vector<proto::ObjectValueProto> out;
  int i = 0;
  for (py::handle r : results) {
    const std::string id = i < static_cast<int>(return_ids.size()) ? std::string(return_ids[i])
                                                                   : ObjectId::Random().Binary();
    out.push_back(StoreResult(id, r));
    ++i;
  }
  return out;
}

std::vector<proto::ObjectValueProto> PyExecutor::Execute(const proto::TaskSpec& spec,
                                                         std::vector<core::ExecArg> args) {
  py::gil_scoped_acquire gil;
  try {
    py::tuple call = CallArgsToPython(spec, args);
    py::object results = fn_(spec.method(), spec.is_creation(), call[2], call[0], call[1],
                             spec.tensor_transport(), py::bytes(spec.retry_exceptions()),
                             spec.max_concurrency());
    call = py::tuple();
    return StoreResults(spec.return_ids(), results);
  } catch (py::error_already_set& e) {
    return ErrorResults(spec, PythonError(e));
  } catch (std::exception& e) {
    return ErrorResults(spec, Status::Internal(std::string("worker error: ") + e.what()));
  }
}

void PyExecutor::ExecuteAsync(const proto::TaskSpec& spec, std::vector<core::ExecArg> args,
                              DoneFn done) {
  if (spec.is_creation() || !asyncio_.load(std::memory_order_acquire) || fn_async_.is_none()) {
    done(Execute(spec, std::move(args)));
    if (spec.is_creation()) asyncio_.store(spec.is_asyncio(), std::memory_order_release);
    return;
  }
  py::gil_scoped_acquire gil;
  try {
    py::tuple call = CallArgsToPython(spec, args);
    std::vector<std::string> ids(spec.return_ids().begin(), spec.return_ids().end());
    // Called once by the event loop, with the results (or raising: an
    // internal error of the worker's own code).
    py::cpp_function finish([this, ids, done](py::object results) {
      std::vector<proto::ObjectValueProto> out;
      try {
        out = StoreResults(ids, results);
      } catch (py::error_already_set& e) {
        out.assign(std::max<size_t>(1, ids.size()), core::MakeErrorValue(PythonError(e)));
      }
      py::gil_scoped_release release;  // the reply path needs no GIL
      done(std::move(out));
    });
    fn_async_(spec.method(), call[2], call[0], call[1], spec.tensor_transport(),
              py::bytes(spec.retry_exceptions()), finish);
  } catch (py::error_already_set& e) {
    done(ErrorResults(spec, PythonError(e)));
  } catch (std::exception& e) {
    done(ErrorResults(spec, Status::Internal(std::string("worker error: ") + e.what())));
  }
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
