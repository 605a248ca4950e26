#include "ferry/core/core_worker.h"

#include <google/protobuf/message_lite.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <thread>

#include "ferry/collective/head_kv_store.h"
#include "ferry/common/config.h"
#include "ferry/common/host_id.h"
#include "ferry/common/logging.h"
#include "ferry/common/spin_wait.h"
#include "ferry/core/channel_messenger.h"
#include "ferry/core/error_value.h"
#include "ferry/object/inline_value.h"
#include "ferry/object/value_writer.h"
#include "ferry/rpc/connect.h"
#include "ferry/transport/registry.h"

namespace ferry::core {
namespace {

// Answers a GET_OBJECT from another host with the value's bytes inline.
void ReplyInlined(rpc::Responder& responder, const proto::ObjectValueProto& value) {
  auto inlined = object::InlineForAnotherHost(value);
  if (!inlined.ok()) {
    responder.ReplyError(inlined.status());
    return;
  }
  responder.Reply(*inlined);
}

// Collects the completions of several asynchronous lookups for one blocking
// caller. Shared with the callbacks, which may outlive the caller's wait.
class Gather {
 public:
  explicit Gather(size_t n) : values_(n) {}

  void Set(size_t i, ValuePtr v) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (values_[i]) return;
      values_[i] = std::move(v);
      ready_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
  }
  // Waits until `want` values are in or the deadline passes; returns how many.
  size_t WaitFor(size_t want, Deadline deadline) {
    auto pred = [&] { return ready_.load(std::memory_order_acquire) >= want; };
    if (SpinUntil(pred)) return ready_.load();
    std::unique_lock<std::mutex> lock(mu_);
    if (deadline.IsNever()) {
      cv_.wait(lock, pred);
    } else {
      cv_.wait_until(lock, deadline.time_point(), pred);
    }
    return ready_.load();
  }
  std::vector<ValuePtr> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return values_;
  }
  std::vector<bool> Flags() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<bool> flags(values_.size());
    for (size_t i = 0; i < values_.size(); ++i) flags[i] = values_[i] != nullptr;
    return flags;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ValuePtr> values_;
  std::atomic<size_t> ready_{0};
};

ValuePtr ErrorPtr(const Status& s) {
  return std::make_shared<const proto::ObjectValueProto>(MakeErrorValue(s));
}

bool IsRemoteShm(const proto::ObjectValueProto& v) {
  return v.has_shm() && v.shm().pid() != getpid();
}

}  // namespace

CoreWorker::CoreWorker(CoreWorkerOptions options)
    : options_(std::move(options)),
      io_loop_(std::make_unique<rpc::IoLoop>()),
      dispatcher_(std::make_shared<rpc::Dispatcher>()),
      background_(std::make_unique<WorkQueue>("ferry-background")),
      pool_(std::make_unique<object::SegmentPool>(Config::Get().shm_pool_bytes)),
      segments_(std::make_unique<object::LocalSegments>(*pool_)),
      store_(std::make_unique<object::MemoryStore>()),
      refs_(std::make_unique<object::ReferenceCounter>(
          [this](const ObjectId& id) { OnObjectFreed(id); })),
      tensors_(std::make_unique<tensor::TensorStore>()),
      cpu_allocator_(std::make_unique<tensor::CpuAllocator>()),
      submitter_(std::make_unique<ActorSubmitter>(this, background_.get())),
      receiver_(std::make_unique<TaskReceiver>(this)) {
  address_ = options_.listen_address.empty()
                 ? "unix:@ferry-" + options_.session + "-" + options_.worker_id.Hex()
                 : options_.listen_address;
  RegisterHandlers();
}

CoreWorker::~CoreWorker() { Shutdown(); }

proto::Hello CoreWorker::MakeHello() const {
  proto::Hello hello;
  hello.set_token(options_.token);
  hello.set_worker_id(options_.worker_id.Binary());
  hello.set_address(address_);
  hello.set_pid(getpid());
  return hello;
}

void CoreWorker::RegisterHandlers() {
  dispatcher_->Register(proto::GET_OBJECT,
                        [this](const std::shared_ptr<rpc::Channel>&, std::string_view payload,
                               rpc::Responder responder) {
                          HandleGetObject(payload, std::move(responder));
                        });
  dispatcher_->Register(proto::FREE_OBJECTS,
                        [this](const std::shared_ptr<rpc::Channel>&, std::string_view payload,
                               rpc::Responder) { HandleFreeObjects(payload); });
  dispatcher_->Register(proto::ADD_BORROWERS,
                        [this](const std::shared_ptr<rpc::Channel>& channel,
                               std::string_view payload, rpc::Responder responder) {
                          HandleAddBorrowers(channel, payload, std::move(responder));
                        });
  dispatcher_->Register(proto::REMOVE_BORROWERS, [this](const std::shared_ptr<rpc::Channel>&,
                                                        std::string_view payload, rpc::Responder) {
    if (tracker_) tracker_->HandleRemoveBorrowers(payload);
  });
  dispatcher_->Register(proto::PUSH_TASK, [this](const std::shared_ptr<rpc::Channel>&,
                                                 std::string_view payload,
                                                 rpc::Responder responder) {
    proto::TaskSpec spec;
    if (!spec.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      responder.ReplyError(Status::InvalidArgument("malformed TaskSpec"));
      return;
    }
    auto shared = std::make_shared<rpc::Responder>(std::move(responder));
    const bool another_host = !spec.caller_host().empty() && spec.caller_host() != HostId();
    receiver_->Submit(std::move(spec), [shared, another_host](proto::PushTaskReply reply) {
      if (another_host) {
        // Returns in this host's shared memory travel inline to another host.
        for (auto& value : *reply.mutable_returns()) {
          auto inlined = object::InlineForAnotherHost(value);
          value = inlined.ok() ? std::move(*inlined) : MakeErrorValue(inlined.status());
        }
      }
      shared->Reply(reply);
    });
  });
  dispatcher_->Register(proto::ACTOR_DIED, [this](const std::shared_ptr<rpc::Channel>&,
                                                  std::string_view payload, rpc::Responder) {
    // The head saw the actor die (its node too, perhaps): fail its calls now
    // rather than when the connection to it notices.
    proto::ActorInfo info;
    if (!info.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return;
    auto id = ActorId::FromBinary(info.actor_id());
    if (!id.ok()) return;
    Status cause = FromProto(info.death_cause());
    submitter_->MarkDead(*id, cause);
    cause = Status::Unavailable("actor " + info.class_name() + "(" + id->Hex() +
                                ") died: " + cause.message());
    // Groups this process created with it are gone too (a system error):
    // their members' pending transfers fail now.
    if (transfer_owner_) transfer_owner_->OnActorDied(*id, cause);
  });
  // Tensor-transport requests go to the holder made by Start(): no peer
  // knows this process's address before Start() returns.
  for (uint16_t method : rdt::TensorHolder::ServedMethods()) {
    dispatcher_->Register(method, [this, method](const std::shared_ptr<rpc::Channel>&,
                                                 std::string_view payload, rpc::Responder r) {
      auto responder = std::make_shared<rpc::Responder>(std::move(r));
      holder_->Serve(method, payload,
                     [responder](const Status& s, const google::protobuf::MessageLite* reply) {
                       if (s.ok()) {
                         responder->Reply(*reply);
                       } else {
                         responder->ReplyError(s);
                       }
                     });
    });
  }
  dispatcher_->Register(proto::EXIT, [this](const std::shared_ptr<rpc::Channel>&, std::string_view,
                                            rpc::Responder) {
    RequestExit("the head asked this worker to exit");
  });
}

Status CoreWorker::Start() {
  {
    MutexLock lock(mu_);
    if (started_) return Status::FailedPrecondition("CoreWorker already started");
    started_ = true;
  }
  io_loop_->Start();
  rpc::ServerOptions server_options;
  server_options.token = options_.token;
  server_options.worker_id = options_.worker_id.Binary();
  FERRY_ASSIGN_OR_RETURN(server_, rpc::Server::Listen(*io_loop_, address_, server_options,
                                                      dispatcher_, nullptr));
  address_ = server_->address();
  if (!options_.node_ip.empty()) {
    FERRY_ASSIGN_OR_RETURN(tcp_server_,
                           rpc::Server::Listen(*io_loop_, "tcp:" + options_.node_ip + ":0",
                                               server_options, dispatcher_, nullptr));
    address_ += "," + tcp_server_->address();
  }
  head_address_ = options_.head_address.empty() ? address_ : options_.head_address;
  channels_ = std::make_unique<rpc::ChannelCache>(*io_loop_, MakeHello(), dispatcher_);
  messenger_ = std::make_unique<ChannelMessenger>(*channels_, *background_);
  tracker_ = std::make_unique<RefTracker>(options_.worker_id, *refs_, *messenger_);
  StartTensorTransport();
  return Status::Ok();
}

void CoreWorker::StartTensorTransport() {
  rdt::TensorHolder::Dependencies deps;
  deps.address = address_;
  deps.actor_id = options_.is_driver ? "" : options_.actor_id.Binary();
  deps.store = tensors_.get();
  deps.allocator = cpu_allocator_.get();
  deps.peers = messenger_.get();
  deps.make_one_sided = transport::CreateOneSidedTransport;
  deps.write_value = [this](const ObjectId& id,
                            const std::vector<std::span<const uint8_t>>& buffers) {
    SerializedValue value;
    value.format = "tensors";
    value.buffers = buffers;
    return WriteValue(id, value);
  };
  deps.join_group = [this](const proto::JoinGroup& request, collective::GroupManager& groups) {
    FERRY_ASSIGN_OR_RETURN(auto head, HeadChannel());
    collective::HeadKvStore store(head);
    return groups.Join(request, store);
  };
  holder_ = std::make_unique<rdt::TensorHolder>(std::move(deps));
  transfer_owner_ = std::make_unique<rdt::TransferOwner>(options_.worker_id, *store_, *this,
                                                         *messenger_);
}

void CoreWorker::Shutdown() {
  {
    MutexLock lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  receiver_->Stop();
  submitter_->Shutdown();
  if (holder_) holder_->Shutdown();
  background_->Close();
  background_->Join();
  if (channels_) channels_->CloseAll();
  if (server_) server_->Close();
  if (tcp_server_) tcp_server_->Close();
  io_loop_->Stop();
  io_loop_->Join();
  segments_->Clear();
  pool_->Clear();
  tensors_->Clear();
}

// --- references -------------------------------------------------------------

void CoreWorker::AddLocalRef(const ObjectRef& ref) {
  if (tracker_) tracker_->AddLocalRef(ref);
}

void CoreWorker::RemoveLocalRef(const ObjectRef& ref) {
  if (tracker_) tracker_->RemoveLocalRef(ref);
}

bool CoreWorker::AddDeserializedRef(const ObjectRef& ref) {
  return tracker_ && tracker_->AddDeserializedRef(ref);
}

Status CoreWorker::RegisterBorrows(std::span<const ObjectRef> refs, Deadline deadline) {
  if (!tracker_) return Status::FailedPrecondition("ferry is not started");
  return tracker_->RegisterBorrows(refs, deadline);
}

void CoreWorker::PinEscapedRef(const ObjectRef& ref) {
  if (tracker_) tracker_->HoldForever(ref);
}

void CoreWorker::HandleAddBorrowers(const std::shared_ptr<rpc::Channel>& channel,
                                    std::string_view payload, rpc::Responder responder) {
  if (!tracker_) {
    responder.ReplyError(Status::Unavailable("ferry is not started"));
    return;
  }
  // The borrower's connection closing is its death: its borrows end.
  auto borrower = channel ? WorkerId::FromBinary(channel->peer().worker_id())
                          : StatusOr<WorkerId>(Status::InvalidArgument("no connection"));
  bool watch = false;
  if (borrower.ok()) {
    MutexLock lock(mu_);
    watch = watched_borrowers_.insert(channel.get()).second;
  }
  if (watch) {
    const rpc::Channel* key = channel.get();
    channel->AddCloseCallback([this, key, worker = *borrower](Status) {
      {
        MutexLock lock(mu_);
        watched_borrowers_.erase(key);
      }
      tracker_->OnWorkerGone(worker);
    });
  }
  Status s = tracker_->HandleAddBorrowers(payload);
  if (s.ok()) {
    responder.Reply(proto::Empty());
  } else {
    responder.ReplyError(s);
  }
}

void CoreWorker::OnObjectFreed(const ObjectId& id) {
  ValuePtr value = store_->GetIfReady(id);
  store_->Erase(id);
  if (value) FreeValue(id, value);
  if (tracker_) tracker_->Release(id);  // the refs a put of ours contained
}

void CoreWorker::FreeValue(const ObjectId& id, const ValuePtr& value) {
  std::string producer;
  {
    MutexLock lock(mu_);
    auto it = remote_producers_.find(id);
    if (it != remote_producers_.end()) {
      producer = std::move(it->second);
      remote_producers_.erase(it);
    }
  }
  const bool holds_refs = value->contained_refs_size() > 0;
  if (value->has_rdt()) {
    transfer_owner_->Forget(id);
    // The tensors stay in their producer until now.
    if (value->rdt().producer_address() == address_) {
      holder_->Drop(id);
      return;
    }
    producer = value->rdt().producer_address();
  } else if (!value->has_shm()) {
    if (!holds_refs) return;  // else its producer holds the refs inside it
  } else if (!IsRemoteShm(*value)) {
    segments_->Free(id);
    return;
  }
  if (producer.empty()) return;
  proto::FreeObjects msg;
  msg.add_object_ids(id.Binary());
  messenger_->Notify(producer, proto::FREE_OBJECTS, msg);
}

// --- values -----------------------------------------------------------------

StatusOr<proto::ObjectValueProto> CoreWorker::WriteValue(const ObjectId& id,
                                                         const SerializedValue& value) {
  FERRY_ASSIGN_OR_RETURN(proto::ObjectValueProto written,
                         object::WriteValue(id, value.format, value.data, value.buffers, *segments_,
                                            *pool_, Config::Get().inline_bytes));
  if (!value.contained_refs.empty() && tracker_) {
    tracker_->Hold(id, value.contained_refs);
    for (const ObjectRef& ref : value.contained_refs) *written.add_contained_refs() = ref.ToProto();
  }
  return written;
}

StatusOr<ObjectRef> CoreWorker::Put(const SerializedValue& value) {
  ObjectRef ref{ObjectId::Random(), address_, options_.worker_id};
  FERRY_ASSIGN_OR_RETURN(proto::ObjectValueProto stored, WriteValue(ref.id, value));
  (void)refs_->AddOwnedObject(ref.id);  // fresh random id: never tracked yet
  refs_->AddLocalRef(ref.id);
  store_->Put(ref.id, std::make_shared<const proto::ObjectValueProto>(std::move(stored)));
  return ref;
}

StatusOr<ObjectRef> CoreWorker::PutTensors(const SerializedValue& skeleton,
                                           std::vector<tensor::Tensor> tensors,
                                           const std::string& transport) {
  if (!transport::IsOneSided(transport)) {
    std::string one_sided;
    for (const transport::TransportInfo& t : transport::Transports()) {
      if (t.kind == transport::TransportKind::kOneSided && t.available) {
        one_sided += (one_sided.empty() ? "" : ", ") + t.name;
      }
    }
    return Status::InvalidArgument(
        "put(..., _tensor_transport='" + transport + "'): only one-sided transports (" + one_sided +
        ") can keep a put's tensors in place; collective transports move tensors only between "
        "actors of a group");
  }
  FERRY_RETURN_IF_ERROR(transport::CheckTensorTransport(transport));
  ObjectRef ref{ObjectId::Random(), address_, options_.worker_id};
  FERRY_ASSIGN_OR_RETURN(proto::ObjectValueProto stored, WriteValue(ref.id, skeleton));
  proto::RdtInfo* info = stored.mutable_rdt();
  info->set_transport(transport);
  for (const tensor::Tensor& t : tensors) *info->add_tensors() = t.meta();
  if (Status s = holder_->Store(ref.id, std::move(tensors), info); !s.ok()) {
    segments_->Free(ref.id);  // the skeleton's segment, if it needed one
    return s;
  }
  (void)refs_->AddOwnedObject(ref.id);
  refs_->AddLocalRef(ref.id);
  store_->Put(ref.id, std::make_shared<const proto::ObjectValueProto>(std::move(stored)));
  return ref;
}

void CoreWorker::Resolve(const proto::ObjectRefProto& ref, std::function<void(ValuePtr)> done) {
  auto id = ObjectId::FromBinary(ref.object_id());
  if (!id.ok()) {
    done(ErrorPtr(id.status()));
    return;
  }
  if (ref.owner_worker_id() != options_.worker_id.Binary()) {
    FetchFromOwner(ref, std::move(done));
    return;
  }
  if (!refs_->Has(*id) && !store_->GetIfReady(*id)) {
    done(ErrorPtr(Status::DataLoss("object " + id->Hex() +
                                   " was already freed: no ObjectRef to it was alive")));
    return;
  }
  store_->Subscribe(*id, [done = std::move(done)](ValuePtr v) { done(std::move(v)); });
}

void CoreWorker::FetchFromOwner(const proto::ObjectRefProto& ref,
                                std::function<void(ValuePtr)> done) {
  auto job = [this, ref, done = std::move(done)]() mutable {
    auto channel = channels_->Get(ref.owner_address(),
                                  Deadline::After(Config::Get().rpc_connect_timeout));
    if (!channel.ok()) {
      done(ErrorPtr(
          Status::DataLoss("the owner of object " +
                           HexEncode(reinterpret_cast<const uint8_t*>(ref.object_id().data()),
                                     ref.object_id().size()) +
                           " is unreachable (" + channel.status().message() + ")")));
      return;
    }
    proto::GetObjectRequest req;
    req.set_object_id(ref.object_id());
    req.set_timeout_ms(-1);
    req.set_requester_host(HostId());
    (*channel)->Call(
        proto::GET_OBJECT, req, [done = std::move(done)](Status status, std::string_view payload) {
          if (!status.ok()) {
            if (status.code() == StatusCode::kUnavailable) {
              status = Status::DataLoss("the owner of the object died: " + status.message());
            }
            done(ErrorPtr(status));
            return;
          }
          auto value = std::make_shared<proto::ObjectValueProto>();
          if (!value->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
            done(ErrorPtr(Status::Internal("malformed object value from its owner")));
            return;
          }
          done(std::move(value));
        });
  };
  if (!background_->Post(std::move(job))) {
    // Shutting down: nothing will answer.
  }
}

StatusOr<std::vector<ValuePtr>> CoreWorker::Get(std::span<const ObjectRef> refs,
                                                Deadline deadline) {
  auto gather = std::make_shared<Gather>(refs.size());
  for (size_t i = 0; i < refs.size(); ++i) {
    Resolve(refs[i].ToProto(), [gather, i](ValuePtr v) { gather->Set(i, std::move(v)); });
  }
  size_t ready = gather->WaitFor(refs.size(), deadline);
  if (ready < refs.size()) {
    return Status::DeadlineExceeded("get timed out: " + std::to_string(refs.size() - ready) +
                                    " of " + std::to_string(refs.size()) +
                                    " objects were not ready");
  }
  return gather->Take();
}

StatusOr<std::vector<bool>> CoreWorker::Wait(std::span<const ObjectRef> refs, size_t num_ready,
                                             Deadline deadline) {
  auto gather = std::make_shared<Gather>(refs.size());
  for (size_t i = 0; i < refs.size(); ++i) {
    Resolve(refs[i].ToProto(), [gather, i](ValuePtr v) { gather->Set(i, std::move(v)); });
  }
  gather->WaitFor(std::min(num_ready, refs.size()), deadline);
  return gather->Flags();
}

void CoreWorker::HandleGetObject(std::string_view payload, rpc::Responder responder) {
  proto::GetObjectRequest req;
  if (!req.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    responder.ReplyError(Status::InvalidArgument("malformed GetObjectRequest"));
    return;
  }
  auto id = ObjectId::FromBinary(req.object_id());
  if (!id.ok()) {
    responder.ReplyError(id.status());
    return;
  }
  if (!refs_->Has(*id) && !store_->GetIfReady(*id)) {
    responder.ReplyError(Status::DataLoss("object " + id->Hex() + " was freed by its owner"));
    return;
  }
  auto shared = std::make_shared<rpc::Responder>(std::move(responder));
  if (req.requester_host().empty() || req.requester_host() == HostId()) {
    store_->Subscribe(*id, [shared](ValuePtr v) { shared->Reply(*v); });
    return;
  }
  // Another host cannot map this host's segments: send the bytes, copied
  // off the io thread.
  store_->Subscribe(*id, [this, shared](ValuePtr v) {
    if (!v->has_shm()) {
      shared->Reply(*v);
      return;
    }
    if (!background_->Post([shared, v] { ReplyInlined(*shared, *v); })) {
      shared->ReplyError(Status::Unavailable("ferry is shutting down"));
    }
  });
}

void CoreWorker::HandleFreeObjects(std::string_view payload) {
  proto::FreeObjects msg;
  if (!msg.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return;
  for (const std::string& b : msg.object_ids()) {
    auto id = ObjectId::FromBinary(b);
    if (!id.ok()) continue;
    segments_->Free(*id);
    holder_->Drop(*id);
    if (tracker_) tracker_->Release(*id);
  }
}

// --- actors -----------------------------------------------------------------

StatusOr<std::shared_ptr<rpc::Channel>> CoreWorker::HeadChannel() {
  return channels_->Get(head_address_, Deadline::After(Config::Get().rpc_connect_timeout));
}

StatusOr<ObjectId> CoreWorker::WriteStructure(const CallArgs& args, proto::TaskSpec* spec,
                                              std::vector<ObjectId>* temp_ids) {
  ObjectId structure_id = ObjectId::Random();
  FERRY_ASSIGN_OR_RETURN(proto::ObjectValueProto structure,
                         WriteValue(structure_id, args.structure));
  if (structure.has_shm() || structure.contained_refs_size() > 0) {
    temp_ids->push_back(structure_id);
  }
  proto::TaskArg* arg = spec->add_args();
  arg->set_object_id(structure_id.Binary());
  *arg->mutable_value() = std::move(structure);
  return structure_id;
}

Status CoreWorker::CountDeps(const std::vector<ObjectRef>& refs, std::vector<ObjectId>* counted) {
  for (const ObjectRef& ref : refs) {
    if (ref.owner_id != options_.worker_id) continue;
    if (!refs_->Has(ref.id)) {
      if (!counted->empty()) refs_->RemoveSubmittedTaskRefs(*counted);
      counted->clear();
      return Status::DataLoss("object " + ref.id.Hex() + " was already freed");
    }
    refs_->AddSubmittedTaskRefs(std::span<const ObjectId>(&ref.id, 1));
    counted->push_back(ref.id);
  }
  return Status::Ok();
}

void CoreWorker::FillDepArg(const ObjectRef& ref, const ActorId& target, proto::TaskArg* arg) {
  arg->set_object_id(ref.id.Binary());
  if (ref.owner_id == options_.worker_id) {
    // Ours and ready: pass the value (or its location) along directly and
    // save the receiver a round trip.
    if (ValuePtr v = store_->GetIfReady(ref.id)) {
      transfer_owner_->FillArgument(ref.id, v, target, arg);
      return;
    }
  }
  *arg->mutable_ref() = ref.ToProto();
}

StatusOr<ActorId> CoreWorker::CreateActor(const ActorCreation& creation) {
  ActorId actor_id = ActorId::Random();
  proto::CreateActor req;
  req.set_actor_id(actor_id.Binary());
  *req.mutable_options() = creation.options;
  for (const auto& a : creation.worker_command) req.add_worker_command(a);
  proto::TaskSpec* spec = req.mutable_creation_task();
  spec->set_task_id(TaskId::Random().Binary());
  spec->set_actor_id(actor_id.Binary());
  spec->set_caller_id(options_.worker_id.Binary());
  spec->set_caller_address(address_);
  spec->set_caller_host(HostId());
  spec->set_method("__init__");
  spec->set_is_creation(true);
  spec->set_language(creation.language);
  spec->set_max_concurrency(std::max(1, creation.options.max_concurrency()));
  std::vector<ObjectId> temps;
  FERRY_ASSIGN_OR_RETURN(ObjectId structure_id, WriteStructure(creation.args, spec, &temps));
  // The worker may fetch the constructor's arguments whenever it starts:
  // they are held until it says the constructor ran (FREE_OBJECTS of the
  // structure's id), with the structure's segment and nested refs.
  tracker_->Hold(structure_id, creation.args.refs);
  for (const ObjectRef& ref : creation.args.refs) FillDepArg(ref, actor_id, spec->add_args());
  auto release = [&] {
    segments_->Free(structure_id);
    tracker_->Release(structure_id);
  };
  auto head = HeadChannel();
  if (!head.ok()) {
    release();
    return head.status();
  }
  auto reply = (*head)->CallSync(proto::CREATE_ACTOR, req,
                                 Deadline::After(Config::Get().rpc_connect_timeout));
  if (!reply.ok()) {
    release();
    return reply.status().WithContext("creating actor");
  }
  return actor_id;
}

StatusOr<std::vector<ObjectRef>> CoreWorker::SubmitActorTask(const ActorId& actor,
                                                             const TaskCall& call,
                                                             std::vector<std::string>* warnings) {
  if (call.num_returns < 0) return Status::InvalidArgument("num_returns must be >= 0");
  FERRY_RETURN_IF_ERROR(transport::CheckTensorTransport(call.tensor_transport));
  FERRY_RETURN_IF_ERROR(transfer_owner_->CheckSubmission(actor, call.tensor_transport));
  auto spec = std::make_shared<proto::TaskSpec>();
  spec->set_task_id(TaskId::Random().Binary());
  spec->set_actor_id(actor.Binary());
  spec->set_caller_id(options_.worker_id.Binary());
  spec->set_caller_address(address_);
  spec->set_caller_host(HostId());
  spec->set_method(call.method);
  spec->set_tensor_transport(call.tensor_transport);
  std::vector<ObjectId> counted, temps;
  FERRY_RETURN_IF_ERROR(CountDeps(call.args.refs, &counted));
  StatusOr<ObjectId> written = WriteStructure(call.args, spec.get(), &temps);
  if (!written.ok()) {
    if (!counted.empty()) refs_->RemoveSubmittedTaskRefs(counted);
    return written.status();
  }
  // Borrowed top-level arguments stay borrowed until the task is done (the
  // owned ones are counted as submitted above).
  if (counted.size() < call.args.refs.size()) {
    std::vector<ObjectRef> borrowed;
    for (const ObjectRef& ref : call.args.refs) {
      if (!tracker_->Owns(ref)) borrowed.push_back(ref);
    }
    tracker_->Hold(*written, borrowed);
    if (std::find(temps.begin(), temps.end(), *written) == temps.end()) temps.push_back(*written);
  }
  std::vector<ObjectId> rdt_deps = transfer_owner_->NoteUses(call.args.refs, actor, warnings);
  std::vector<ObjectRef> returns;
  std::vector<ObjectId> return_ids;
  for (int i = 0; i < call.num_returns; ++i) {
    ObjectRef ref{ObjectId::Random(), address_, options_.worker_id};
    (void)refs_->AddOwnedObject(ref.id);  // fresh random id: never tracked yet
    refs_->AddLocalRef(ref.id);
    spec->add_return_ids(ref.id.Binary());
    return_ids.push_back(ref.id);
    returns.push_back(std::move(ref));
  }
  if (!transport::IsObjectStore(call.tensor_transport)) {
    transfer_owner_->Track(return_ids, actor, call.tensor_transport);
  }
  // The transfers the task's arguments need (noted before the task is
  // sent): a system error in the task is theirs.
  auto transfers = std::make_shared<rdt::TaskTransfers>();
  auto done = [this, actor, return_ids, counted, temps, transfers](proto::PushTaskReply reply) {
    OnTaskDone(actor, return_ids, counted, temps, transfers, std::move(reply));
  };
  auto deps = call.args.refs;
  if (rdt_deps.empty()) {
    for (const ObjectRef& ref : deps) FillDepArg(ref, actor, spec->add_args());
    if (!deps.empty()) *transfers = rdt::TaskTransfers::Of(*spec);
    submitter_->Submit(actor, std::move(*spec), std::move(done));
    return returns;
  }
  // An RDT argument's transfer can only be arranged once its producer has
  // returned (its size and location are known only then): hold this task (its place in the actor's
  // order is reserved) until every RDT dependency is ready.
  uint64_t seq = submitter_->ReserveSequence(actor);
  auto remaining = std::make_shared<std::atomic<size_t>>(rdt_deps.size());
  auto finish = [this, spec, deps, actor, seq, done, transfers]() mutable {
    for (const ObjectRef& ref : deps) FillDepArg(ref, actor, spec->add_args());
    *transfers = rdt::TaskTransfers::Of(*spec);
    spec->set_sequence_number(seq);
    submitter_->SubmitReserved(actor, std::move(*spec), std::move(done));
  };
  auto shared_finish = std::make_shared<decltype(finish)>(std::move(finish));
  for (const ObjectId& id : rdt_deps) {
    store_->Subscribe(id, [remaining, shared_finish](ValuePtr) {
      // Nothing in `finish` blocks, so it may run here (usually the io thread).
      if (remaining->fetch_sub(1) == 1) (*shared_finish)();
    });
  }
  return returns;
}

void CoreWorker::OnTaskDone(const ActorId& actor, const std::vector<ObjectId>& return_ids,
                            const std::vector<ObjectId>& counted_deps,
                            const std::vector<ObjectId>& temp_ids,
                            const std::shared_ptr<rdt::TaskTransfers>& transfers,
                            proto::PushTaskReply reply) {
  if (!transfers->empty() && reply.returns_size() > 0) {
    Status s = ValueStatus(reply.returns(0));
    if (rdt::TransferOwner::IsTransferFailure(s)) {
      // A failed transfer (not the user's exception): its groups are
      // destroyed everywhere, and a sender's death is reported as such.
      // Finding out may wait on the Head: not on the io thread.
      auto shared = std::make_shared<proto::PushTaskReply>(std::move(reply));
      bool posted = background_->Post([=, this] {
        Status death = transfer_owner_->ExplainFailure(*transfers, s, std::chrono::seconds(1));
        if (!death.ok()) {
          for (auto& value : *shared->mutable_returns()) value = MakeErrorValue(death);
        }
        FinishTaskDone(actor, return_ids, counted_deps, temp_ids, std::move(*shared));
      });
      if (posted) return;
      reply = std::move(*shared);
    }
  }
  FinishTaskDone(actor, return_ids, counted_deps, temp_ids, std::move(reply));
}

void CoreWorker::FinishTaskDone(const ActorId& actor, const std::vector<ObjectId>& return_ids,
                                const std::vector<ObjectId>& counted_deps,
                                const std::vector<ObjectId>& temp_ids, proto::PushTaskReply reply) {
  for (const ObjectId& id : temp_ids) {
    segments_->Free(id);
    tracker_->Release(id);
  }
  std::string producer;
  {
    MutexLock lock(mu_);
    auto it = actor_addresses_.find(actor);
    if (it != actor_addresses_.end()) producer = it->second;
  }
  for (size_t i = 0; i < return_ids.size(); ++i) {
    ValuePtr value = static_cast<int>(i) < reply.returns_size()
                         ? std::make_shared<const proto::ObjectValueProto>(
                               std::move(*reply.mutable_returns(static_cast<int>(i))))
                         : ErrorPtr(Status::Internal("the actor returned too few values"));
    const ObjectId& id = return_ids[i];
    if (IsRemoteShm(*value) || value->contained_refs_size() > 0) {
      MutexLock lock(mu_);
      remote_producers_[id] = producer;
    }
    store_->Put(id, value);
    // Every ref may have been dropped while the task ran.
    if (!refs_->Has(id)) OnObjectFreed(id);
  }
  if (!counted_deps.empty()) refs_->RemoveSubmittedTaskRefs(counted_deps);
}

StatusOr<proto::ActorInfo> CoreWorker::GetActorInfo(const ActorId& actor, bool wait_until_settled,
                                                    Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(auto head, HeadChannel());
  proto::GetActorInfo req;
  req.set_actor_id(actor.Binary());
  req.set_wait_until_settled(wait_until_settled);
  FERRY_ASSIGN_OR_RETURN(std::string payload, head->CallSync(proto::GET_ACTOR_INFO, req, deadline));
  proto::ActorInfo info;
  if (!info.ParseFromString(payload)) return Status::Internal("malformed ActorInfo");
  return info;
}

StatusOr<ActorConnection> CoreWorker::ConnectToActor(const ActorId& id) {
  auto deadline = Deadline::After(Config::Get().worker_start_timeout +
                                  Config::Get().rpc_connect_timeout);
  // Wait in two steps so that an actor still starting after a few seconds —
  // most often one waiting for resources — is reported, not silently slow.
  auto info = GetActorInfo(id, true, Deadline::After(Config::Get().pending_warning));
  if (!info.ok() && info.status().code() == StatusCode::kDeadlineExceeded) {
    auto now = GetActorInfo(id, false, deadline);
    std::string why = now.ok() && !now->pending_reason().empty()
                          ? now->pending_reason()
                          : std::string("its worker is still starting");
    FERRY_LOG(WARNING) << "actor " << (now.ok() ? now->class_name() : id.Hex())
                       << " has not started after " << Config::Get().pending_warning.count() / 1000
                       << " s: " << why << " (calls to it wait; ferry.get's timeout bounds them)";
    info = GetActorInfo(id, true, deadline);
  }
  if (!info.ok()) return info.status();
  if (info->state() == proto::ActorInfo::DEAD) {
    return Status::Unavailable(info->death_cause().message());
  }
  if (info->state() != proto::ActorInfo::ALIVE) {
    return Status::Unavailable("actor " + id.Hex() + " did not start in time");
  }
  {
    MutexLock lock(mu_);
    actor_addresses_[id] = info->address();
  }
  // A dedicated channel: its close is the actor's death.
  ActorConnection connection;
  FERRY_ASSIGN_OR_RETURN(connection.channel,
                         rpc::Connect(*io_loop_, info->address(), MakeHello(), dispatcher_,
                                      Deadline::After(Config::Get().rpc_connect_timeout)));
  connection.another_host = !info->host().empty() && info->host() != HostId();
  return connection;
}

bool CoreWorker::IsDead(const ActorId& actor, Status* cause) {
  return submitter_->IsDead(actor, cause);
}

StatusOr<std::string> CoreWorker::Address(const ActorId& actor, bool wait_until_started,
                                          Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(proto::ActorInfo info, GetActorInfo(actor, wait_until_started, deadline));
  if (info.state() != proto::ActorInfo::ALIVE) {
    return Status::Unavailable("actor " + actor.Hex() +
                               " is dead: " + info.death_cause().message());
  }
  return info.address();
}

Status CoreWorker::StoreTensors(const ObjectId& id, std::vector<tensor::Tensor> tensors,
                                proto::RdtInfo* info) {
  return holder_->Store(id, std::move(tensors), info);
}

void CoreWorker::ResolveTensors(const proto::TaskArg& arg, const ValuePtr& value,
                                std::function<void(StatusOr<std::vector<tensor::Tensor>>)> done) {
  holder_->Receive(arg, value, std::move(done));
}

Status CoreWorker::DeathCause(const ActorId& id) {
  auto info = GetActorInfo(id, false, Deadline::After(std::chrono::seconds(2)));
  if (!info.ok() || info->state() != proto::ActorInfo::DEAD) return Status::Ok();
  return FromProto(info->death_cause());
}

Status CoreWorker::KillActor(const ActorId& actor) {
  FERRY_ASSIGN_OR_RETURN(auto head, HeadChannel());
  proto::KillActor req;
  req.set_actor_id(actor.Binary());
  auto reply = head->CallSync(proto::KILL_ACTOR, req,
                              Deadline::After(Config::Get().kill_grace + std::chrono::seconds(10)));
  if (!reply.ok()) return reply.status().WithContext("killing actor");
  Status cause = Status::Unavailable("the actor was killed by ferry.kill()");
  submitter_->MarkDead(actor, cause);
  transfer_owner_->OnActorDied(actor, Status::Unavailable("actor " + actor.Hex() +
                                                          " was killed by ferry.kill()"));
  return Status::Ok();
}

CoreWorker::Stats CoreWorker::GetStats() {
  Stats s;
  s.owned_objects = refs_->NumTracked();
  s.stored_values = store_->Size();
  s.local_segments = segments_->Size();
  s.borrowed_objects = tracker_ ? tracker_->NumBorrowed() : 0;
  s.value_holds = tracker_ ? tracker_->NumHolds() : 0;
  return s;
}

// --- worker side ------------------------------------------------------------

void CoreWorker::RequestExit(const std::string& why) {
  FERRY_LOG(INFO) << "worker exiting: " << why;
  receiver_->Stop();
}

Status CoreWorker::RunActorWorker(TaskExecutor* executor) {
  FERRY_ASSIGN_OR_RETURN(auto head, HeadChannel());
  head->SetCloseCallback([this](Status) { RequestExit("the head's connection closed"); });
  proto::RegisterWorker reg;
  reg.set_worker_id(options_.worker_id.Binary());
  reg.set_actor_id(options_.actor_id.Binary());
  reg.set_address(address_);
  reg.set_pid(getpid());
  reg.set_host(HostId());
  FERRY_ASSIGN_OR_RETURN(std::string payload,
                         head->CallSync(proto::REGISTER_WORKER, reg,
                                        Deadline::After(Config::Get().rpc_connect_timeout)));
  proto::RegisterWorkerReply registered;
  if (!registered.ParseFromString(payload))
    return Status::Internal("malformed RegisterWorkerReply");
  const proto::CreateActor& actor = registered.actor();
  // Bounded: the value arrives in a message (and from user options).
  constexpr int kMaxConcurrency = 1024;
  int concurrency = std::clamp(actor.options().max_concurrency(), 1, kMaxConcurrency);

  proto::TaskSpec creation = actor.creation_task();
  // Its own caller queue: the creator's method calls start at sequence 0 too.
  creation.set_caller_id("__creation__");
  creation.set_sequence_number(0);
  // The creator holds the constructor's arguments until they were read.
  std::string creator = creation.caller_address();
  std::string structure_id = creation.args_size() > 0 ? creation.args(0).object_id() : "";
  receiver_->Submit(std::move(creation),
                    [this, head, creator, structure_id](proto::PushTaskReply reply) {
                      if (!structure_id.empty()) {
                        proto::FreeObjects consumed;
                        consumed.add_object_ids(structure_id);
                        messenger_->Notify(creator, proto::FREE_OBJECTS, consumed);
                      }
                      proto::ActorReady ready;
                      ready.set_actor_id(options_.actor_id.Binary());
                      bool failed = reply.returns_size() > 0 && !ValueStatus(reply.returns(0)).ok();
                      if (failed) *ready.mutable_creation_error() = reply.returns(0).error();
                      auto ack = head->CallSync(proto::ACTOR_READY, ready,
                                                Deadline::After(Config::Get().rpc_connect_timeout));
                      if (failed || !ack.ok()) RequestExit("the actor's constructor failed");
                    });
  std::vector<std::thread> extra;
  for (int i = 1; i < concurrency; ++i) {
    extra.emplace_back([this, executor] { receiver_->RunExecutor(executor); });
  }
  receiver_->RunExecutor(executor);
  for (auto& t : extra) t.join();
  return Status::Ok();
}

}  // namespace ferry::core
