// CoreWorker: the runtime inside every ferry process — driver or actor worker.
//
// A coordinator: it owns the process's io loop, listening socket and channel
// cache, and wires the components that do the work — the objects this
// process owns (memory store + reference counter) and its shared-memory
// segments, the actor-task submitter (caller side), the task receiver (actor
// side), and direct tensor transport (rdt::TransferOwner for the RDT objects
// it owns, rdt::TensorHolder for the tensors it holds). Languages sit on
// top: the Python module and the C++ API call the methods below and
// implement TaskExecutor; nothing here knows Python.
//
// Lifecycle: construct; others (the embedded Head) may add handlers to
// dispatcher(); Start() listens and makes the tensor-transport components; a
// worker then calls RunActorWorker(), which blocks until the actor exits;
// Shutdown() stops everything and is safe to call twice and from the
// destructor.
//
// Thread contract: every public method is thread-safe. Blocking methods
// (Get, Wait, CreateActor, KillActor, RunActorWorker, and the tensor
// components' Pull, FetchToObjectStore, CreateGroup, DestroyGroup) must not
// be called on the io thread. The threads of a ferry process:
//   * the io thread (IoLoop): every socket, every request handler, most
//     completions; never blocks and never runs user code;
//   * "ferry-background" (WorkQueue): connects and other blocking control
//     work, so the io thread never waits on one;
//   * "ferry-transfer" (TensorHolder): pulls for task arguments and copies
//     of tensors into the object store;
//   * "ferry-collective" (TensorHolder): group joins, which wait for every
//     member;
//   * executor threads (RunActorWorker; max_concurrency of them, the
//     calling thread included): run user code, one task each;
//   * transport threads, inside the backends: Gloo's waiter threads (one per
//     blocked send or receive), the UCX service thread, the shm mapping
//     cache's sweeper; their completions call back into the holder;
//   * in a worker, the parent-death watcher (ProcessSpawner), which exits
//     the process when the driver is gone.
//
//   CoreWorker core(options);
//   FERRY_RETURN_IF_ERROR(core.Start());
//   FERRY_ASSIGN_OR_RETURN(ActorId a, core.CreateActor(creation));
//   FERRY_ASSIGN_OR_RETURN(auto refs, core.SubmitActorTask(a, call));
//   FERRY_ASSIGN_OR_RETURN(auto values, core.Get(refs, Deadline::Never()));
#pragma once

#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/common/work_queue.h"
#include "ferry/core/actor_locator.h"
#include "ferry/core/actor_submitter.h"
#include "ferry/core/argument_resolver.h"
#include "ferry/core/blocked_task_notifier.h"
#include "ferry/core/object_ref.h"
#include "ferry/core/object_resolver.h"
#include "ferry/core/peer_messenger.h"
#include "ferry/core/rdt/actor_directory.h"
#include "ferry/core/rdt/tensor_holder.h"
#include "ferry/core/rdt/transfer_owner.h"
#include "ferry/core/ref_tracker.h"
#include "ferry/core/state_reporter.h"
#include "ferry/core/task_executor.h"
#include "ferry/core/task_receiver.h"
#include "ferry/core/task_submitter.h"
#include "ferry/object/local_segments.h"
#include "ferry/object/memory_store.h"
#include "ferry/object/reference_counter.h"
#include "ferry/object/segment_pool.h"
#include "ferry/rpc/channel_cache.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"
#include "ferry/rpc/server.h"
#include "ferry/tensor/cpu_allocator.h"
#include "ferry/tensor/tensor_store.h"
#include "ferry/transport/transport_table.h"

namespace ferry::core {

struct CoreWorkerOptions {
  bool is_driver = true;
  WorkerId worker_id = WorkerId::Random();
  // Random per session; every connection must present it.
  std::string token;
  // Names this session's sockets. Hex.
  std::string session;
  // Empty: "unix:@ferry-<session>-<worker id>" (abstract: nothing on disk).
  std::string listen_address;
  // Cluster mode: also listen on TCP at this IP (an ephemeral port), so that
  // processes on other hosts reach this one; address() is then the list
  // "unix:@...,tcp:IP:PORT" (rpc/address.h). Empty: Unix socket only.
  std::string node_ip;
  // Where the Head listens. Empty in a driver: its own address (the Head is
  // embedded and serves on this process's socket).
  std::string head_address;
  // Worker only: the actor this process hosts.
  ActorId actor_id;
};

// A serialized value handed in by a language: format + bytes + out-of-band
// buffers (borrowed for the duration of the call), and the ObjectRefs
// serialized inside it, which stay alive while the value does.
struct SerializedValue {
  std::string format;
  std::string_view data;
  std::vector<std::span<const uint8_t>> buffers;
  std::vector<ObjectRef> contained_refs;
};

// The arguments of a call: the serialized argument structure, in which the
// language replaced each top-level ObjectRef argument by an index into
// `refs` (resolved to its value before the call); refs nested deeper travel
// as refs, in structure.contained_refs (the task borrows them).
struct CallArgs {
  SerializedValue structure;
  std::vector<ObjectRef> refs;
};

struct ActorCreation {
  proto::ActorOptions options;
  std::vector<std::string> worker_command;  // argv of the worker process
  std::string language = "python";
  CallArgs args;  // the language's constructor payload (class + args)
  // The actor's methods run on the language's event loop (TaskSpec.is_asyncio).
  bool is_asyncio = false;
};

struct TaskCall {
  std::string method;
  CallArgs args;
  int num_returns = 1;
  // "" or "object_store": returns go to the object store; otherwise their
  // tensors stay in the actor (RDT) and move with this transport.
  std::string tensor_transport;
  // Ray's max_task_retries for this call: 0 none, -1 unbounded.
  int max_retries = 0;
  // The language's description of the exceptions to retry; empty: none.
  std::string retry_exceptions;
};

class CoreWorker : public ArgumentResolver, public rdt::ActorDirectory {
 public:
  explicit CoreWorker(CoreWorkerOptions options);
  ~CoreWorker() override;
  CoreWorker(const CoreWorker&) = delete;
  CoreWorker& operator=(const CoreWorker&) = delete;

  rpc::IoLoop& io_loop() { return *io_loop_; }
  rpc::Dispatcher& dispatcher() { return *dispatcher_; }
  const WorkerId& worker_id() const { return options_.worker_id; }
  const std::string& address() const { return address_; }
  const std::string& head_address() const { return head_address_; }
  const std::string& session() const { return options_.session; }
  const std::string& token() const { return options_.token; }
  bool is_driver() const { return options_.is_driver; }

  Status Start();
  void Shutdown();

  // --- Reference counting (RefTracker: owned refs and borrowed ones).
  void AddLocalRef(const ObjectRef& ref);
  void RemoveLocalRef(const ObjectRef& ref);
  // A ref that came out of a serialized value. True when it is a first
  // borrow: pass it to RegisterBorrows before the value reaches user code.
  bool AddDeserializedRef(const ObjectRef& ref);
  Status RegisterBorrows(std::span<const ObjectRef> refs, Deadline deadline);
  // A ref pickled outside ferry's serializers: it lives as long as this
  // process (see RefTracker::HoldForever).
  void PinEscapedRef(const ObjectRef& ref);

  // --- Actors (caller side).
  StatusOr<ActorId> CreateActor(const ActorCreation& creation);
  // Returns `num_returns` refs, each already counted once (the caller's
  // handle must call RemoveLocalRef when it is dropped). `warnings` receives
  // things the user should hear about (e.g. the RDT mutability warning).
  StatusOr<std::vector<ObjectRef>> SubmitActorTask(const ActorId& actor, const TaskCall& call,
                                                   std::vector<std::string>* warnings = nullptr);
  // --- Remote functions (TaskSubmitter): `call` runs on a worker the Head
  // lends with `lease`'s resources, once its arguments are ready; its
  // max_retries re-runs it after its worker died (Ray's default for tasks:
  // 3). `call.method` names the function for errors. Returns as above.
  StatusOr<std::vector<ObjectRef>> SubmitTask(const TaskCall& call, proto::LeaseWorker lease);
  // Ends the actor's process; later calls to it fail with kUnavailable.
  // With `no_restart` false, an actor whose max_restarts allows restarts.
  Status KillActor(const ActorId& actor, bool no_restart = true);
  StatusOr<proto::ActorInfo> GetActorInfo(const ActorId& actor, bool wait_until_settled,
                                          Deadline deadline) {
    return locator_->GetActorInfo(actor, wait_until_settled, deadline);
  }
  // The actor created with options.name `name` (NotFound when none is alive
  // or starting under that name).
  StatusOr<proto::ActorInfo> GetNamedActorInfo(const std::string& name, Deadline deadline) {
    proto::GetActorInfo req;
    req.set_name(name);
    return locator_->GetActorInfo(req, deadline);
  }

  // --- Objects.
  // Values of `refs` (error values included: see error_value.h). Waits up to
  // `deadline` (DeadlineExceeded).
  StatusOr<std::vector<ValuePtr>> Get(std::span<const ObjectRef> refs, Deadline deadline);
  // Readiness of each ref once `num_ready` are ready or the deadline passed.
  StatusOr<std::vector<bool>> Wait(std::span<const ObjectRef> refs, size_t num_ready,
                                   Deadline deadline);
  // Stores a value owned by this process; returned ref counted once.
  StatusOr<ObjectRef> Put(const SerializedValue& value);
  // Writes a value into this process's memory (inline or a segment of its
  // own, registered under `id`); used for task returns. The refs contained
  // in it are held until the value is freed (its owner sends FREE_OBJECTS).
  StatusOr<proto::ObjectValueProto> WriteValue(const ObjectId& id, const SerializedValue& value);
  void FreeLocalSegment(const ObjectId& id) { segments_->Free(id); }

  // --- Direct tensor transport (the components; valid after Start()).
  // Keeps `tensors` in this process under `id` (an RDT return or put):
  // TensorHolder::Store with this process as the producer.
  Status StoreTensors(const ObjectId& id, std::vector<tensor::Tensor> tensors,
                      proto::RdtInfo* info);
  // put(value, _tensor_transport=T) for a one-sided T: the tensors stay in
  // this process; `skeleton` is the value with the tensors left out. The
  // returned ref is counted once.
  StatusOr<ObjectRef> PutTensors(const SerializedValue& skeleton,
                                 std::vector<tensor::Tensor> tensors, const std::string& transport);
  // This process's held tensors and their transfers (producer and receiver).
  rdt::TensorHolder& tensor_holder() { return *holder_; }
  // The RDT objects this process owns and the collective groups it created.
  rdt::TransferOwner& transfer_owner() { return *transfer_owner_; }
  tensor::TensorStore& tensor_store() { return *tensors_; }
  const ActorId& actor_id() const { return options_.actor_id; }

  // --- Worker side.
  // Registers with the Head, builds the actor with `executor`, then serves
  // tasks on this thread (plus max_concurrency-1 more) until told to exit.
  Status RunActorWorker(TaskExecutor* executor);

  struct Stats {
    size_t owned_objects = 0;
    size_t stored_values = 0;
    size_t local_segments = 0;
    size_t borrowed_objects = 0;
    size_t value_holds = 0;
    uint64_t borrow_requests = 0;  // ADD_BORROWERS sent so far
  };
  Stats GetStats();

  // ArgumentResolver.
  void Resolve(const proto::ObjectRefProto& ref, std::function<void(ValuePtr)> done) override;
  void ResolveTensors(const proto::TaskArg& arg, const ValuePtr& value,
                      std::function<void(StatusOr<std::vector<tensor::Tensor>>)> done) override;
  // The returns of a task run here that hold refs are owned by its caller,
  // whose death (its connection closing) releases those holds.
  void TieReturnHolds(const std::shared_ptr<rpc::Channel>& caller,
                      const std::vector<std::string>& return_ids,
                      const proto::PushTaskReply& reply);
  // The actor restarted: what its old process held is lost.
  void OnActorRestarted(const ActorId& actor, const Status& cause);
  // The actor is dead for good: its constructor arguments are released (a
  // restartable actor's were held for its restarts).
  void ReleaseCreationArgs(const ActorId& actor);
  // rdt::ActorDirectory.
  bool IsDead(const ActorId& actor, Status* cause) override;
  StatusOr<std::string> Address(const ActorId& actor, bool wait_until_started,
                                Deadline deadline) override;
  StatusOr<std::string> Host(const ActorId& actor, Deadline deadline) override;

 private:
  static ValuePtr ErrorPtr(const Status& s);
  // A value in another process's shared-memory segment.
  static bool IsRemoteShm(const proto::ObjectValueProto& v);
  void RegisterHandlers();
  proto::Hello MakeHello() const;
  StatusOr<std::shared_ptr<rpc::Channel>> HeadChannel();
  // What a submitted call leaves to finish: its return refs (counted once
  // for the caller), the owned deps counted in flight, the temporaries.
  struct PreparedCall {
    std::vector<ObjectRef> returns;
    std::vector<ObjectId> return_ids, counted, temps;
  };
  // Fills `spec` (all but the target and the dependency arguments) and
  // makes the returns.
  StatusOr<PreparedCall> PrepareCall(const TaskCall& call, proto::TaskSpec* spec);
  // Writes the argument structure as args[0] under a fresh id, returned;
  // `temp_ids` receives it when something must be freed on completion (a
  // temporary segment, the refs it holds).
  StatusOr<ObjectId> WriteStructure(const CallArgs& args, proto::TaskSpec* spec,
                                    std::vector<ObjectId>* temp_ids);
  // Counts every owned dep as in flight (released by OnTaskDone).
  Status CountDeps(const std::vector<ObjectRef>& refs, std::vector<ObjectId>* counted);
  // Appends the argument for dependency `ref` of a task to `target`: the
  // value when ready and ours (for RDT: with the transfer arranged), else
  // the ref.
  void FillDepArg(const ObjectRef& ref, const ActorId& target, proto::TaskArg* arg);
  // The TaskSubmitter, its ports wired to this worker's components.
  std::unique_ptr<TaskSubmitter> MakeTaskSubmitter();
  // Makes the direct-tensor-transport components (Start, once the address
  // is known) and registers their request handlers.
  void StartTensorTransport();
  // A task's reply: its returns become values; a failed transfer of its
  // arguments is explained first (rdt::TransferOwner::ExplainFailure).
  void OnTaskDone(const ActorId& actor, const std::vector<ObjectId>& return_ids,
                  const std::vector<ObjectId>& counted_deps, const std::vector<ObjectId>& temp_ids,
                  const std::shared_ptr<rdt::TaskTransfers>& transfers, proto::PushTaskReply reply);
  void FinishTaskDone(const ActorId& actor, const std::vector<ObjectId>& return_ids,
                      const std::vector<ObjectId>& counted_deps,
                      const std::vector<ObjectId>& temp_ids, proto::PushTaskReply reply);
  // The reference counter dropped `id`: forget and free its bytes.
  void OnObjectFreed(const ObjectId& id);
  void FreeValue(const ObjectId& id, const ValuePtr& value);
  void RequestExit(const std::string& why);

  // Handlers (io thread).
  void HandleFreeObjects(std::string_view payload);
  void HandleAddBorrowers(const std::shared_ptr<rpc::Channel>& channel, std::string_view payload,
                          rpc::Responder responder);

  const CoreWorkerOptions options_;
  std::string address_;
  std::string head_address_;

  std::unique_ptr<rpc::IoLoop> io_loop_;
  std::shared_ptr<rpc::Dispatcher> dispatcher_;
  std::unique_ptr<rpc::Server> server_;
  std::unique_ptr<rpc::Server> tcp_server_;  // cluster mode only
  std::unique_ptr<rpc::ChannelCache> channels_;
  std::unique_ptr<WorkQueue> background_;
  std::unique_ptr<Timeline> timeline_;  // task and call spans (`ferry timeline`)

  std::unique_ptr<object::SegmentPool> pool_;
  std::unique_ptr<object::LocalSegments> segments_;
  std::unique_ptr<object::MemoryStore> store_;
  std::unique_ptr<object::ReferenceCounter> refs_;
  std::unique_ptr<RefTracker> tracker_;  // made by Start() (needs the messenger)

  std::unique_ptr<tensor::TensorStore> tensors_;
  std::unique_ptr<tensor::CpuAllocator> cpu_allocator_;

  // Made by Start() (they need the address and the channel cache).
  std::unique_ptr<PeerMessenger> messenger_;
  std::unique_ptr<ObjectResolver> resolver_;
  std::unique_ptr<rdt::TensorHolder> holder_;
  std::unique_ptr<rdt::TransferOwner> transfer_owner_;

  std::unique_ptr<ActorLocator> locator_;
  std::unique_ptr<ActorSubmitter> submitter_;
  std::unique_ptr<TaskSubmitter> task_submitter_;  // made by Start() (needs the resolver)
  std::unique_ptr<TaskReceiver> receiver_;
  std::unique_ptr<BlockedTaskNotifier> blocked_;  // get/wait of a lent task
  std::unique_ptr<StateReporter> state_;          // GET_STATE (`ferry memory`)

  Mutex mu_;
  // Owned objects whose bytes live in another process's segment: where to
  // send FREE_OBJECTS.
  std::unordered_map<ObjectId, std::string> remote_producers_ FERRY_GUARDED_BY(mu_);
  // Actors created here -> their constructor arguments' structure, released
  // when the worker says it read them or, at the latest, when the actor is
  // dead for good.
  std::unordered_map<ActorId, ObjectId> creation_args_ FERRY_GUARDED_BY(mu_);
  bool started_ FERRY_GUARDED_BY(mu_) = false;
  bool shut_down_ FERRY_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::core
