#include "ferry/api/executor.h"

#include <cxxabi.h>

#include "ferry/actor.h"
#include "ferry/api/registry.h"
#include "ferry/api/runtime.h"
#include "ferry/core/error_value.h"
#include "ferry/transport/transport_table.h"

namespace ferry::api {
namespace {

// "<type>: <what>" of the exception being handled.
std::string DescribeCurrentException() {
  std::type_info* type = abi::__cxa_current_exception_type();
  std::string name = type ? internal::Demangle(type->name()) : "unknown exception";
  try {
    throw;
  } catch (const std::exception& e) {
    return name + ": " + e.what();
  } catch (...) {
    return name;
  }
}

}  // namespace

internal::DecodeInput InputOf(const core::ExecArg& arg) {
  internal::DecodeInput in;
  auto data = arg.value->data();
  in.data = std::string_view(reinterpret_cast<const char*>(data.data()), data.size());
  if (!arg.tensors.empty()) {
    // RDT: the producer's own tensors (same memory) or received copies.
    for (const tensor::Tensor& t : arg.tensors) {
      in.buffers.push_back(internal::RawBuffer{t.data(), t.nbytes(), t.keep_alive()});
    }
  } else {
    for (size_t i = 0; i < arg.value->num_buffers(); ++i) {
      auto b = arg.value->buffer(i);
      in.buffers.push_back(internal::RawBuffer{b.data(), b.size(), arg.value->keep_alive()});
    }
  }
  return in;
}

std::vector<proto::ObjectValueProto> CppExecutor::Execute(const proto::TaskSpec& spec,
                                                          std::vector<core::ExecArg> args) {
  const int n = spec.is_creation() ? 1 : std::max(1, spec.return_ids_size());
  auto fail = [&](const Status& s) {
    return std::vector<proto::ObjectValueProto>(n, core::MakeErrorValue(s));
  };
  if (args.empty())
    return fail(Status::InvalidArgument("a C++ task without its argument structure"));
  for (const auto& a : args) {
    if (a.value->format() != kFormat) {
      return fail(Status::InvalidArgument("a C++ actor got an argument of format '" +
                                          a.value->format() + "' (from another language?)"));
    }
  }
  std::string what = spec.is_creation() ? "the actor's factory" : spec.method();
  try {
    std::vector<internal::DecodeInput> deps;
    for (size_t i = 1; i < args.size(); ++i) deps.push_back(InputOf(args[i]));
    internal::CallContext ctx(InputOf(args[0]), std::move(deps));
    if (spec.is_creation()) {
      std::string factory;
      ctx.ReadHeader(factory);
      what = factory;
      auto fn = FindRegistered(factory);
      if (!fn || !fn->is_factory) {
        return fail(Status::NotFound("'" + factory +
                                     "' is not a registered actor factory in the "
                                     "worker (is the worker the same binary as the driver?)"));
      }
      std::shared_ptr<void> instance = fn->factory(ctx);
      std::lock_guard<std::mutex> lock(mu_);
      instance_ = std::move(instance);
      cls_ = fn->cls;
      return {};
    }
    auto fn = FindRegistered(spec.method());
    if (!fn || fn->is_factory) {
      return fail(
          Status::NotFound("'" + spec.method() + "' is not a registered method in the worker"));
    }
    void* self;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!instance_ || cls_ != fn->cls) {
        return fail(Status::InvalidArgument("'" + spec.method() +
                                            "' is not a method of this actor's class"));
      }
      self = instance_.get();
    }
    fn->method(self, ctx);
    args.clear();  // received tensors die with the task, before it reports done
    std::vector<proto::ObjectValueProto> out;
    const std::string id = spec.return_ids_size() > 0 ? spec.return_ids(0)
                                                      : ObjectId::Random().Binary();
    out.push_back(StoreResult(id, ctx.result(), spec.tensor_transport()));
    for (int i = 1; i < n; ++i) out.push_back(out[0]);
    return out;
  } catch (...) {
    return fail(Status::TaskError(what + ": " + DescribeCurrentException()));
  }
}

proto::ObjectValueProto CppExecutor::StoreResult(const std::string& return_id,
                                                 const internal::EncodedValue& value,
                                                 const std::string& transport) {
  auto id = ObjectId::FromBinary(return_id);
  if (!id.ok()) return core::MakeErrorValue(id.status());
  const bool rdt = !transport::IsObjectStore(transport) && !value.tensors.empty();
  core::SerializedValue v;
  v.format = kFormat;
  v.data = value.data;
  if (!rdt) {
    for (const Tensor& t : value.tensors) {
      v.buffers.emplace_back(static_cast<const uint8_t*>(t.data_ptr()), t.nbytes());
    }
  }
  auto stored = core_->WriteValue(*id, v);
  if (!stored.ok())
    return core::MakeErrorValue(stored.status().WithContext("storing a return value"));
  if (!rdt) return std::move(stored).value();
  proto::RdtInfo* info = stored->mutable_rdt();
  info->set_transport(transport);
  std::vector<tensor::Tensor> tensors;
  for (const Tensor& t : value.tensors) {
    proto::TensorMetaProto meta;
    meta.set_dtype(std::string(DTypeName(t.dtype())));
    for (int64_t d : t.shape()) meta.add_shape(d);
    meta.set_device("cpu");
    meta.set_nbytes(t.nbytes());
    *info->add_tensors() = meta;
    tensors.push_back(
        tensor::Tensor::Wrap(t.data_ptr(), t.nbytes(), std::move(meta), t.keep_alive()));
  }
  Status s = core_->StoreTensors(*id, std::move(tensors), info);
  if (!s.ok()) return core::MakeErrorValue(s.WithContext("keeping the returned tensors"));
  return std::move(stored).value();
}

}  // namespace ferry::api

namespace ferry::internal {

CallContext::CallContext(DecodeInput structure, std::vector<DecodeInput> deps)
    : structure_(std::move(structure)),
      deps_(std::move(deps)),
      buf_(structure_.data),
      stream_(&buf_),
      archive_(stream_) {}

}  // namespace ferry::internal
