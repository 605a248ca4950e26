// ferry::Init/Shutdown and the caller-side functions of the C++ API: each
// converts types, calls the CoreWorker and maps a failed Status to an
// exception (errors.cc). Mirrors python/src/py_runtime.cc.
#include "ferry/api/runtime.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>

#include "ferry/api/executor.h"
#include "ferry/api/registry.h"
#include "ferry/cluster/process_runtime.h"
#include "ferry/common/config.h"
#include "ferry/core/error_value.h"
#include "ferry/ferry.h"
#include "ferry/transport/transport_table.h"

namespace ferry {
namespace {

struct Runtime {
  std::mutex mu;
  std::shared_ptr<core::CoreWorker> core;
  cluster::DriverRuntime driver;  // empty in a worker
  std::vector<std::string> worker_command;
};

Runtime& Rt() {
  static Runtime* rt = new Runtime();  // never destroyed: refs may die during exit
  return *rt;
}

Deadline DeadlineFrom(std::optional<std::chrono::nanoseconds> timeout) {
  if (!timeout) return Deadline::Never();
  return Deadline::After(std::chrono::duration_cast<Clock::duration>(
      std::max(*timeout, std::chrono::nanoseconds::zero())));
}

// argv of a worker: this very binary (SPMD) with the driver's arguments.
std::vector<std::string> WorkerCommand(int argc, char** argv) {
  char path[4096];
  ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  std::vector<std::string> cmd;
  if (n > 0) {
    cmd.emplace_back(path, static_cast<size_t>(n));
  } else if (argc > 0 && argv != nullptr) {
    cmd.emplace_back(argv[0]);
  }
  for (int i = 1; i < argc && argv != nullptr; ++i) cmd.emplace_back(argv[i]);
  return cmd;
}

std::vector<core::ObjectRef> RefsOf(const std::vector<std::shared_ptr<internal::RefState>>& states,
                                    const char* what) {
  std::vector<core::ObjectRef> refs;
  refs.reserve(states.size());
  for (const auto& s : states) {
    if (!s)
      internal::ThrowStatus(Status::InvalidArgument(std::string(what) + " of a null ObjectRef"));
    refs.push_back(s->ref());
  }
  return refs;
}

core::CallArgs ToCallArgs(const internal::EncodedArgs& args) {
  core::CallArgs out;
  out.structure.format = api::kFormat;
  out.structure.data = args.value.data;
  for (const Tensor& t : args.value.tensors) {
    out.structure.buffers.emplace_back(static_cast<const uint8_t*>(t.data_ptr()), t.nbytes());
  }
  out.refs = RefsOf(args.refs, "a call");
  return out;
}

ActorId ActorIdOf(const std::string& binary) {
  return internal::ValueOrThrow(ActorId::FromBinary(binary));
}

[[noreturn]] void RunWorker() {
  Status status;
  auto started = cluster::StartWorkerRuntime();
  if (!started.ok()) {
    status = started.status();
  } else {
    std::shared_ptr<core::CoreWorker> core = *started;
    {
      std::lock_guard<std::mutex> lock(Rt().mu);
      Rt().core = core;
    }
    api::CppExecutor executor(core.get());
    status = core->RunActorWorker(&executor);
  }
  if (!status.ok()) std::cerr << "ferry worker: " << status << std::endl;
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  // User threads and actor state must not keep a finished worker alive.
  _exit(status.ok() ? 0 : 1);
}

}  // namespace

namespace api {

std::shared_ptr<core::CoreWorker> CurrentCore() {
  std::lock_guard<std::mutex> lock(Rt().mu);
  if (!Rt().core) {
    internal::ThrowStatus(
        Status::InvalidArgument("ferry is not running: call ferry::Init(argc, argv) first"));
  }
  return Rt().core;
}

}  // namespace api

bool IsWorker() { return cluster::IsSpawnedWorker(); }

bool IsInitialized() {
  std::lock_guard<std::mutex> lock(Rt().mu);
  return Rt().core != nullptr;
}

void Init(int argc, char** argv, const InitOptions& options) {
  std::vector<std::string> errors = api::RegistrationErrors();
  if (!errors.empty()) {
    std::string message = "ferry: FERRY_REMOTE: ";
    for (size_t i = 0; i < errors.size(); ++i) message += (i ? "; " : "") + errors[i];
    if (IsWorker()) {
      std::cerr << message << std::endl;
      _exit(1);
    }
    throw RegistrationError(Status::AlreadyExists(message));
  }
  if (IsWorker()) RunWorker();
  Runtime& rt = Rt();
  std::lock_guard<std::mutex> lock(rt.mu);
  if (rt.core) return;
  cluster::DriverOptions driver;
  driver.address = options.address.empty() ? EnvString("FERRY_ADDRESS", "") : options.address;
  driver.token = options.token.empty() ? EnvString("FERRY_TOKEN", "") : options.token;
  driver.node_ip = options.node_ip.empty() ? EnvString("FERRY_NODE_IP", "") : options.node_ip;
  rt.driver = internal::ValueOrThrow(cluster::StartDriverRuntime(driver));
  rt.core = rt.driver.core;
  rt.worker_command = WorkerCommand(argc, argv);
}

void Shutdown() {
  cluster::DriverRuntime driver;
  {
    std::lock_guard<std::mutex> lock(Rt().mu);
    if (!Rt().driver.core) return;  // a worker's runtime ends with its process
    driver = std::move(Rt().driver);
    Rt().core.reset();
  }
  driver.Shutdown();
}

namespace internal {

std::string HexOf(const std::string& binary) {
  return HexEncode(reinterpret_cast<const uint8_t*>(binary.data()), binary.size());
}

std::string RefHex(const RefState& state) { return state.ref().id.Hex(); }

std::string CreateActorRaw(const std::string& factory, const std::string& class_name,
                           const ActorOptionsRaw& options, EncodedArgs args) {
  auto core = api::CurrentCore();
  core::ActorCreation c;
  c.options.set_class_name(class_name);
  if (!options.name.empty()) c.options.set_name(options.name);
  c.options.set_max_concurrency(std::max(1, options.max_concurrency));
  if (options.max_restarts < -1) {
    ThrowStatus(Status::InvalidArgument("max_restarts must be >= 0, or -1 for unbounded"));
  }
  c.options.set_max_restarts(options.max_restarts);
  {
    std::lock_guard<std::mutex> lock(Rt().mu);
    c.worker_command = Rt().worker_command;
  }
  if (c.worker_command.empty()) {
    ThrowStatus(Status::FailedPrecondition(
        "ferry: actors can be created only from the driver (the process that ran ferry::Init)"));
  }
  c.language = "cpp";
  c.args = ToCallArgs(args);
  return ValueOrThrow(core->CreateActor(c)).Binary();
}

std::shared_ptr<RefState> SubmitTaskRaw(const std::string& actor_id, const std::string& method,
                                        const std::string& tensor_transport, int max_task_retries,
                                        EncodedArgs args) {
  if (max_task_retries < -1) {
    ThrowStatus(Status::InvalidArgument("max_task_retries must be >= 0, or -1 for unbounded"));
  }
  auto core = api::CurrentCore();
  core::TaskCall call;
  call.method = method;
  call.num_returns = 1;
  call.max_retries = max_task_retries;
  call.tensor_transport = tensor_transport;
  std::transform(call.tensor_transport.begin(), call.tensor_transport.end(),
                 call.tensor_transport.begin(), [](unsigned char ch) { return std::tolower(ch); });
  call.args = ToCallArgs(args);
  std::vector<std::string> warnings;
  auto refs = ValueOrThrow(core->SubmitActorTask(ActorIdOf(actor_id), call, &warnings));
  for (const auto& w : warnings) std::cerr << "ferry warning: " << w << std::endl;
  return std::make_shared<RefState>(std::move(refs.at(0)), core);
}

void KillActorRaw(const std::string& actor_id, bool no_restart) {
  if (actor_id.empty()) ThrowStatus(Status::InvalidArgument("ferry::Kill of a null actor handle"));
  ThrowIfError(api::CurrentCore()->KillActor(ActorIdOf(actor_id), no_restart));
}

std::vector<FetchedValue> GetRaw(const std::vector<std::shared_ptr<RefState>>& states,
                                 const GetOptions& options) {
  auto core = api::CurrentCore();
  std::vector<core::ObjectRef> refs = RefsOf(states, "ferry::Get");
  Deadline deadline = DeadlineFrom(options.timeout);
  std::vector<core::ValuePtr> values = ValueOrThrow(core->Get(refs, deadline));
  std::vector<FetchedValue> out;
  out.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const core::ValuePtr& v = values[i];
    ThrowIfError(core::ValueStatus(*v));
    if (v->format() != api::kFormat) {
      ThrowStatus(Status::InvalidArgument("ferry::Get: object " + refs[i].id.Hex() +
                                          " holds a value of format '" + v->format() +
                                          "', not a C++ value"));
    }
    auto readable = ValueOrThrow(object::ReadableValue::Open(v));
    FetchedValue f;
    f.input.data = std::string_view(reinterpret_cast<const char*>(readable->data().data()),
                                    readable->data().size());
    f.keep_alive = readable;
    std::shared_ptr<object::ReadableValue> tensors = readable;
    if (v->has_rdt()) {
      std::string transport = options.tensor_transport.empty() ? v->rdt().transport()
                                                               : options.tensor_transport;
      if (transport::IsTwoSided(transport)) {
        ThrowStatus(Status::InvalidArgument(
            "ferry::Get: this object's tensors stay in the actor that made it and move over '" +
            v->rdt().transport() +
            "' only between members of a collective group; pass "
            "GetOptions{.tensor_transport = \"object_store\"} to fetch them through the object "
            "store"));
      }
      tensors = ValueOrThrow(core->tensor_holder().FetchToObjectStore(refs[i].id, *v, deadline));
    }
    for (size_t b = 0; b < tensors->num_buffers(); ++b) {
      std::span<uint8_t> buf = tensors->buffer(b);
      f.input.buffers.push_back(RawBuffer{buf.data(), buf.size(), tensors->keep_alive()});
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::shared_ptr<RefState> PutRaw(const EncodedValue& value) {
  auto core = api::CurrentCore();
  core::SerializedValue v;
  v.format = api::kFormat;
  v.data = value.data;
  for (const Tensor& t : value.tensors) {
    v.buffers.emplace_back(static_cast<const uint8_t*>(t.data_ptr()), t.nbytes());
  }
  return std::make_shared<RefState>(ValueOrThrow(core->Put(v)), core);
}

std::vector<bool> WaitRaw(const std::vector<std::shared_ptr<RefState>>& states, size_t num_ready,
                          std::optional<std::chrono::nanoseconds> timeout) {
  auto core = api::CurrentCore();
  std::vector<core::ObjectRef> refs = RefsOf(states, "ferry::Wait");
  return ValueOrThrow(core->Wait(refs, num_ready, DeadlineFrom(timeout)));
}

void CreateCollectiveGroupRaw(const std::vector<ActorHandleBase>& actors,
                              const std::string& backend, const std::string& name) {
  auto core = api::CurrentCore();
  std::vector<ActorId> ids;
  for (const auto& a : actors) {
    if (a.IsNull())
      ThrowStatus(Status::InvalidArgument("CreateCollectiveGroup: a null actor handle"));
    ids.push_back(ActorIdOf(a.id()));
  }
  std::string b = backend;
  std::transform(b.begin(), b.end(), b.begin(), [](unsigned char ch) { return std::tolower(ch); });
  ThrowIfError(core->transfer_owner().CreateGroup(name, b, ids));
}

void DestroyCollectiveGroupRaw(const std::string& name) {
  ThrowIfError(api::CurrentCore()->transfer_owner().DestroyGroup(name));
}

void WaitTensorFreedRaw(const Tensor& tensor, std::optional<std::chrono::nanoseconds> timeout) {
  ThrowIfError(
      api::CurrentCore()->tensor_store().WaitFreed(tensor.data_ptr(), DeadlineFrom(timeout)));
}

}  // namespace internal
}  // namespace ferry
