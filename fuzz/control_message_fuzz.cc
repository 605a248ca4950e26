// libFuzzer target: the parsing and validation every control-message
// handler runs on a frame's payload, through the real handlers wherever
// they can run in-process.
//
// Input: byte 0 chooses the message, the rest is its payload.
//   bits 0-5  the method (proto::Method; 0, METHOD_UNSPECIFIED, and those
//             above the last are unknown)
//   bit 7     0: a request (or one-way message) to a handler;
//             1: a reply, parsed and checked as the caller does
//   bit 6     with bit 7: an error reply (payload = StatusProto)
//
// Requests reach, per method:
//   GET_OBJECT, FREE_OBJECTS, SEND_TENSORS, FETCH_TENSORS, LEAVE_GROUP, EXIT,
//   ADD_BORROWERS, REMOVE_BORROWERS (un-started: refused / ignored after
//   the checks; core/ref_tracker_test covers the started handlers),
//   GET_STATE (the StateReporter's answer from the un-started worker's tables),
//   unknown methods: the real CoreWorker handlers, through its Dispatcher
//     (an un-started CoreWorker with fixed ids; it holds tensors under
//     kObjectId so the deeper paths of SEND/FETCH/FREE are reachable).
//   REGISTER_WORKER, ACTOR_READY, GET_ACTOR_INFO, KILL_ACTOR, KV_PUT, KV_GET,
//   KV_DEL, REGISTER_NODE, NODE_HEARTBEAT, WORKER_EXITED, GET_NODES,
//   REGISTER_DRIVER, WORKER_OUTPUT, LIST_ACTORS, LIST_PROCESSES: the real
//   Head handlers (a fresh Head per input; no connection, so the two that
//   keep one refuse after parsing).
//   START_WORKER, STOP_WORKER: parse only (a node agent's handlers; they
//     spawn the message's argv).
//   PUSH_TASK: the real TaskReceiver (ordering, argument resolution, opening
//     every argument with ReadableValue::Open) with the real
//     CoreWorker::Resolve / ResolveTensors as resolver for everything that
//     stays in-process; an executor reads every byte of every argument.
//   CREATE_ACTOR: parse, ActorId::FromBinary, and its creation task through
//     the PUSH_TASK path (as RunActorWorker submits it). Not the handler: it
//     spawns the message's argv.
//   HELLO: parse and the server's checks (token, peer fields); the check
//     itself is private to rpc::Server.
//   JOIN_GROUP: parse only; the handler's validation happens while
//     connecting the transport (network).
//   ACTOR_DIED: parse only (its handler fails calls of the named actor).
// Not reached: resolving refs owned by another process and RDT inline
// fetches (they connect to an address taken from the message), and opening
// shm locations (they map /proc/<pid>/fd/<fd>).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/cluster/head.h"
#include "ferry/cluster/placement.h"
#include "ferry/common/id.h"
#include "ferry/core/core_worker.h"
#include "ferry/core/error_value.h"
#include "ferry/core/task_receiver.h"
#include "ferry/object/readable_value.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"
#include "ferry/tensor/cpu_allocator.h"
#include "ferry/tensor/tensor.h"
#include "ferry/transport/transport_table.h"
#include "fuzz_checks.h"

namespace {

using namespace ferry;  // NOLINT: a fuzz target, all of ferry's types
using fuzz::FuzzCheck;

// Fixed ids, so seeds (fuzz/gen_corpus.py) can name this process's objects.
constexpr std::string_view kWorkerId = "fuzz-worker-0001";
constexpr std::string_view kActorId = "fuzz-actor-00001";
constexpr std::string_view kObjectId = "fuzz-object-0001";
// The caller of the task that stops the receiver after the fuzzed one.
constexpr std::string_view kSentinelCaller =
    "\xff"
    "fuzz-sentinel";
// Receive buffers above this are not allocated (a hostile size is the
// allocator's to refuse; see CpuAllocator's limit), only validated.
constexpr uint64_t kMaxTensorBytes = 1 << 20;

constexpr uint8_t kReplyBit = 0x80;
constexpr uint8_t kErrorBit = 0x40;
constexpr uint8_t kMethodMask = 0x3f;

template <typename Msg>
bool Parse(std::string_view payload, Msg* msg) {
  return msg->ParseFromArray(payload.data(), static_cast<int>(payload.size()));
}

core::CoreWorker& Worker() {
  static core::CoreWorker* worker = [] {
    core::CoreWorkerOptions options;
    options.is_driver = false;
    options.worker_id = WorkerId::FromBinary(kWorkerId).value();
    options.actor_id = ActorId::FromBinary(kActorId).value();
    options.token = "fuzz-token";
    options.session = "fuzz";
    auto* w = new core::CoreWorker(std::move(options));  // never destroyed: its threads idle
    // Started as every process's worker is: it listens (on an abstract
    // socket nobody dials) and makes its tensor-transport components.
    FuzzCheck(w->Start().ok(), "starting the worker");
    return w;
  }();
  return *worker;
}

// What a language runtime does with a value it receives: its error status,
// and every byte of data and buffers.
void ReadValue(const proto::ObjectValueProto& v) {
  (void)core::ValueStatus(v).ToString();
  if (v.has_shm()) return;
  auto opened = object::ReadableValue::Open(std::make_shared<const proto::ObjectValueProto>(v));
  if (opened.ok()) fuzz::TouchValue(**opened);
}

// The receive path's checks on RDT metadata (device, size): what
// ResolveTensors does per tensor once a group is found.
void CheckTensorMetas(const proto::RdtInfo& rdt, tensor::CpuAllocator& alloc) {
  (void)ActorId::FromBinary(rdt.producer_actor_id());
  for (const proto::TensorMetaProto& meta : rdt.tensors()) {
    if (meta.nbytes() > kMaxTensorBytes) continue;
    auto t = tensor::Tensor::AllocateCpu(meta, alloc);
    if (t.ok()) {
      FuzzCheck(t->nbytes() == meta.nbytes(), "a receive buffer has the announced size");
      if (t->nbytes() > 0) std::memset(t->data(), 0xab, t->nbytes());
    }
  }
}

// Resolves arguments the way CoreWorker does, through the real CoreWorker
// wherever that stays in this process.
class Resolver : public core::ArgumentResolver {
 public:
  explicit Resolver(tensor::CpuAllocator& alloc) : alloc_(alloc) {}

  void Resolve(const proto::ObjectRefProto& ref,
               std::function<void(core::ValuePtr)> done) override {
    auto id = ObjectId::FromBinary(ref.object_id());
    if (!id.ok() || ref.owner_worker_id() == kWorkerId) {
      Worker().Resolve(ref, std::move(done));  // bad id, or owned here: all local
      return;
    }
    // Owned elsewhere: CoreWorker would ask the owner at ref.owner_address().
    done(std::make_shared<const proto::ObjectValueProto>(
        core::MakeErrorValue(Status::DataLoss("fuzz: the owner is unreachable"))));
  }

  void ResolveTensors(const proto::TaskArg& arg, const core::ValuePtr& value,
                      std::function<void(StatusOr<std::vector<tensor::Tensor>>)> done) override {
    CheckTensorMetas(value->rdt(), alloc_);
    const bool remote_fetch = ObjectId::FromBinary(arg.object_id()).ok() &&
                              value->rdt().producer_actor_id() != kActorId &&
                              arg.has_tensor_recv() && arg.tensor_recv().inline_fetch();
    if (remote_fetch) {
      done(Status::Unavailable("fuzz: the producer is unreachable"));  // CallPeer would connect
      return;
    }
    // A one-sided pull reads another process's memory with the descriptors
    // (and completes on the transfer queue, after this input's receiver is
    // gone): the producer is another process, unreachable here.
    if (transport::IsOneSided(value->rdt().transport()) &&
        value->rdt().producer_address() != Worker().address()) {
      done(Status::Unavailable("fuzz: the producer of a one-sided object is another process"));
      return;
    }
    Worker().ResolveTensors(arg, value, std::move(done));
  }

 private:
  tensor::CpuAllocator& alloc_;
};

// Reads every argument; the sentinel task stops the receiver.
class Executor : public core::TaskExecutor {
 public:
  explicit Executor(core::TaskReceiver& receiver) : receiver_(receiver) {}

  std::vector<proto::ObjectValueProto> Execute(const proto::TaskSpec& spec,
                                               std::vector<core::ExecArg> args) override {
    if (spec.caller_id() == kSentinelCaller) {
      receiver_.Stop();
      return {};
    }
    FuzzCheck(args.size() == static_cast<size_t>(spec.args_size()),
              "one opened value per argument");
    for (const core::ExecArg& a : args) {
      FuzzCheck(a.value != nullptr, "an argument is opened");
      fuzz::TouchValue(*a.value);
      for (const tensor::Tensor& t : a.tensors) fuzz::TouchTensor(t);
    }
    return std::vector<proto::ObjectValueProto>(spec.is_creation() ? 0 : spec.return_ids_size());
  }

 private:
  core::TaskReceiver& receiver_;
};

// PUSH_TASK: submits `spec`, then a sentinel task from another caller, and
// runs the executor on this thread until the sentinel stops it. The fuzzed
// task's reply must fire exactly once, with one value per return.
void RunTask(proto::TaskSpec spec) {
  if (spec.caller_id() == kSentinelCaller) return;
  static tensor::CpuAllocator alloc(/*max_pooled_bytes=*/4 << 20);
  Resolver resolver(alloc);
  core::TaskReceiver receiver(&resolver);
  Executor executor(receiver);

  const int want = spec.is_creation() ? -1 : spec.return_ids_size();
  int replies = 0;
  receiver.Submit(std::move(spec), [&](proto::PushTaskReply reply) {
    ++replies;
    if (want >= 0) FuzzCheck(reply.returns_size() == want, "one value per return id");
    for (const auto& v : reply.returns()) ReadValue(v);
  });
  proto::TaskSpec sentinel;
  sentinel.set_caller_id(std::string(kSentinelCaller));
  receiver.Submit(std::move(sentinel), [](proto::PushTaskReply) {});
  receiver.RunExecutor(&executor);
  FuzzCheck(replies == 1, "a task is answered exactly once");
}

void RunHeadHandler(uint16_t method, std::string_view payload) {
  rpc::IoLoop loop("fuzz-head");  // never started: timers the handlers arm never fire
  rpc::Dispatcher dispatcher;
  cluster::Head head(loop, dispatcher, {.token = "fuzz-token", .session = "fuzz"});
  dispatcher.Dispatch(nullptr, method, payload, rpc::Responder());
}

void HandleRequest(uint16_t method, std::string_view payload) {
  switch (method) {
    case proto::HELLO: {
      proto::Hello hello;
      if (!Parse(payload, &hello)) return;
      (void)(hello.token() == "fuzz-token");
      (void)WorkerId::FromBinary(hello.worker_id());
      (void)(hello.address() + " (pid " + std::to_string(hello.pid()) + ")");
      return;
    }
    case proto::PUSH_TASK: {
      proto::TaskSpec spec;
      if (Parse(payload, &spec)) RunTask(std::move(spec));
      return;
    }
    case proto::CREATE_ACTOR: {
      proto::CreateActor req;
      if (!Parse(payload, &req)) return;
      (void)ActorId::FromBinary(req.actor_id());
      proto::TaskSpec creation = req.creation_task();
      creation.set_caller_id("__creation__");  // as RunActorWorker submits it
      creation.set_sequence_number(0);
      RunTask(std::move(creation));
      return;
    }
    case proto::JOIN_GROUP: {
      proto::JoinGroup req;
      (void)Parse(payload, &req);
      return;
    }
    case proto::ACTOR_DIED: {
      proto::ActorInfo info;
      if (Parse(payload, &info)) (void)core::FromProto(info.death_cause()).ToString();
      return;
    }
    case proto::START_WORKER: {
      proto::StartWorker req;
      if (Parse(payload, &req)) (void)ActorId::FromBinary(req.actor_id());
      return;
    }
    case proto::STOP_WORKER: {
      proto::StopWorker req;
      (void)Parse(payload, &req);
      return;
    }
    case proto::REGISTER_WORKER:
    case proto::ACTOR_READY:
    case proto::GET_ACTOR_INFO:
    case proto::KILL_ACTOR:
    case proto::KV_PUT:
    case proto::KV_GET:
    case proto::KV_DEL:
    case proto::REGISTER_NODE:
    case proto::NODE_HEARTBEAT:
    case proto::WORKER_EXITED:
    case proto::GET_NODES:
    case proto::REGISTER_DRIVER:
    case proto::WORKER_OUTPUT:
    case proto::LIST_ACTORS:
    case proto::LIST_PROCESSES: RunHeadHandler(method, payload); return;
    default:  // GET_OBJECT, FREE_OBJECTS, SEND/FETCH_TENSORS, LEAVE_GROUP, EXIT,
              // ADD/REMOVE_BORROWERS, GET_STATE, unknown
      Worker().dispatcher().Dispatch(nullptr, method, payload, rpc::Responder());
      return;
  }
}

// What a caller does with the reply to its request of `method`.
void HandleReply(uint16_t method, bool error, std::string_view payload) {
  if (error) {  // rpc::Channel::HandleFrame
    proto::StatusProto status;
    if (Parse(payload, &status) && status.code() != 0) {
      (void)Status(static_cast<StatusCode>(status.code()), status.message()).ToString();
    }
    return;
  }
  switch (method) {
    case proto::HELLO: {
      proto::HelloReply reply;
      if (Parse(payload, &reply)) (void)WorkerId::FromBinary(reply.worker_id());
      return;
    }
    case proto::PUSH_TASK: {
      proto::PushTaskReply reply;
      if (!Parse(payload, &reply)) return;
      for (const auto& v : reply.returns()) ReadValue(v);
      return;
    }
    case proto::GET_OBJECT:
    case proto::FETCH_TENSORS: {
      proto::ObjectValueProto value;
      if (Parse(payload, &value)) ReadValue(value);
      return;
    }
    case proto::REGISTER_WORKER: {  // CoreWorker::RunActorWorker
      proto::RegisterWorkerReply reply;
      if (!Parse(payload, &reply)) return;
      proto::TaskSpec creation = reply.actor().creation_task();
      creation.set_caller_id("__creation__");
      creation.set_sequence_number(0);
      RunTask(std::move(creation));
      return;
    }
    case proto::GET_ACTOR_INFO: {
      proto::ActorInfo info;
      if (Parse(payload, &info)) {
        (void)ActorId::FromBinary(info.actor_id());
        (void)core::FromProto(info.death_cause()).ToString();
      }
      return;
    }
    case proto::KV_GET: {
      proto::KvGetReply reply;
      (void)Parse(payload, &reply);
      return;
    }
    case proto::GET_NODES: {  // ferry.nodes()
      proto::NodeList list;
      if (!Parse(payload, &list)) return;
      for (const auto& node : list.nodes()) {
        (void)NodeId::FromBinary(node.node_id());
        (void)cluster::Describe(cluster::FromProto(node.total()));
        (void)cluster::Describe(cluster::FromProto(node.available()));
      }
      return;
    }
    case proto::REGISTER_NODE: {
      proto::RegisterNodeReply reply;
      (void)Parse(payload, &reply);
      return;
    }
    case proto::REGISTER_DRIVER: {  // cluster::ConnectToCluster
      proto::RegisterDriverReply reply;
      if (Parse(payload, &reply)) (void)NodeId::FromBinary(reply.node_id());
      return;
    }
    case proto::START_WORKER: {
      proto::StartWorkerReply reply;
      (void)Parse(payload, &reply);
      return;
    }
    default: {
      proto::Empty empty;
      (void)Parse(payload, &empty);
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("FERRY_LOG_LEVEL", "error", /*overwrite=*/0);  // handlers log every rejection
  fuzz::QuietProtobuf();
  (void)Worker();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const uint16_t method = selector & kMethodMask;
  const std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);

  // Tensors under kObjectId, so SEND/FETCH/FREE of that id get past the
  // lookup. Restored when a previous input freed them: every input starts
  // from the same state, so a crash reproduces from its input alone.
  static tensor::CpuAllocator alloc(/*max_pooled_bytes=*/1 << 20);
  const ObjectId stored = ObjectId::FromBinary(kObjectId).value();
  if (!Worker().tensor_store().Get(stored)) {
    std::vector<tensor::Tensor> tensors;
    for (uint64_t n : {uint64_t{16}, uint64_t{0}}) {
      proto::TensorMetaProto meta;
      meta.set_dtype("uint8");
      meta.add_shape(static_cast<int64_t>(n));
      meta.set_device("cpu");
      meta.set_nbytes(n);
      auto t = tensor::Tensor::AllocateCpu(meta, alloc);
      FuzzCheck(t.ok(), "allocating the stored tensors");
      if (n > 0) std::memset(t->data(), 7, n);
      tensors.push_back(std::move(t).value());
    }
    proto::RdtInfo info;  // a two-sided object: nothing to export
    info.set_transport("gloo");
    FuzzCheck(Worker().StoreTensors(stored, std::move(tensors), &info).ok(), "storing the tensors");
  }

  if (selector & kReplyBit) {
    HandleReply(method, (selector & kErrorBit) != 0, payload);
  } else {
    HandleRequest(method, payload);
  }
  return 0;
}
