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
#include "ferry/core/value_gather.h"
#include "ferry/object/inline_value.h"
#include "ferry/object/value_writer.h"
#include "ferry/rpc/connect.h"
#include "ferry/transport/registry.h"

namespace ferry::core {

ValuePtr CoreWorker::ErrorPtr(const Status& s) {
  return std::make_shared<const proto::ObjectValueProto>(MakeErrorValue(s));
}

bool CoreWorker::IsRemoteShm(const proto::ObjectValueProto& v) {
  return v.has_shm() && v.shm().pid() != getpid();
}

CoreWorker::CoreWorker(CoreWorkerOptions options)
    : options_(std::move(options)),
      io_loop_(std::make_unique<rpc::IoLoop>()),
      dispatcher_(std::make_shared<rpc::Dispatcher>()),
      background_(std::make_unique<WorkQueue>("ferry-background")),
      timeline_(std::make_unique<Timeline>(
          static_cast<size_t>(std::max<int64_t>(0, Config::Get().timeline_size)))),
      pool_(std::make_unique<object::SegmentPool>(Config::Get().shm_pool_bytes)),
      segments_(std::make_unique<object::LocalSegments>(*pool_)),
      store_(std::make_unique<object::MemoryStore>()),
      refs_(std::make_unique<object::ReferenceCounter>(
          [this](const ObjectId& id) { OnObjectFreed(id); })),
      tensors_(std::make_unique<tensor::TensorStore>()),
      cpu_allocator_(std::make_unique<tensor::CpuAllocator>()),
      locator_(std::make_unique<ActorLocator>(
          [this] { return HeadChannel(); },
          [this](const std::string& address, Deadline deadline) {
            return rpc::Connect(*io_loop_, address, MakeHello(), dispatcher_, deadline);
          })),
      submitter_(std::make_unique<ActorSubmitter>(
          locator_.get(), background_.get(),
          [this](const ActorId& actor, const Status& cause) { OnActorRestarted(actor, cause); },
          timeline_.get())),
      receiver_(std::make_unique<TaskReceiver>(this, timeline_.get())),
      blocked_(std::make_unique<BlockedTaskNotifier>([this] { return HeadChannel(); })),
      state_(std::make_unique<StateReporter>(
          StateReporter::Identity{options_.worker_id, options_.actor_id, options_.is_driver},
          *refs_, *store_, *segments_, *tensors_, *timeline_)) {
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
  state_->Register(*dispatcher_);
  dispatcher_->Register(proto::GET_OBJECT,
                        [this](const std::shared_ptr<rpc::Channel>&, std::string_view payload,
                               rpc::Responder responder) {
                          resolver_->Serve(payload, std::move(responder));
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
  dispatcher_->Register(proto::PUSH_TASK, [this](const std::shared_ptr<rpc::Channel>& channel,
                                                 std::string_view payload,
                                                 rpc::Responder responder) {
    proto::TaskSpec spec;
    if (!spec.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      responder.ReplyError(Status::InvalidArgument("malformed TaskSpec"));
      return;
    }
    auto shared = std::make_shared<rpc::Responder>(std::move(responder));
    const bool another_host = !spec.caller_host().empty() && spec.caller_host() != HostId();
    std::vector<std::string> return_ids(spec.return_ids().begin(), spec.return_ids().end());
    receiver_->Submit(std::move(spec),
                      [this, shared, another_host, channel,
                       return_ids = std::move(return_ids)](proto::PushTaskReply reply) {
                        TieReturnHolds(channel, return_ids, reply);
                        if (another_host) {
                          // Returns in this host's shared memory travel inline to another host.
                          for (auto& value : *reply.mutable_returns()) {
                            auto inlined = object::InlineForAnotherHost(value);
                            value = inlined.ok() ? std::move(*inlined)
                                                 : MakeErrorValue(inlined.status());
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
    if (info.state() == proto::ActorInfo::RESTARTING) {
      // Calls go to the new process once it is ready (ActorSubmitter).
      submitter_->OnRestarting(*id, info.num_restarts());
      // The groups it was in are gone with its old process.
      if (transfer_owner_) {
        transfer_owner_->OnActorDied(*id, Status::Unavailable("actor " + info.class_name() + "(" +
                                                              id->Hex() +
                                                              ") restarted: " + cause.message()));
      }
      return;
    }
    submitter_->MarkDead(*id, cause);
    ReleaseCreationArgs(*id);
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
  resolver_ = std::make_unique<ObjectResolver>(options_.worker_id, refs_.get(), store_.get(),
                                               channels_.get(), background_.get());
  tracker_ = std::make_unique<RefTracker>(options_.worker_id, *refs_, *messenger_);
  task_submitter_ = MakeTaskSubmitter();
  StartTensorTransport();
  state_->Attach({tracker_.get(), holder_.get(), transfer_owner_.get()});
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
  if (channel) tracker_->WatchPeer(channel);
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

void CoreWorker::TieReturnHolds(const std::shared_ptr<rpc::Channel>& caller,
                                const std::vector<std::string>& return_ids,
                                const proto::PushTaskReply& reply) {
  std::vector<ObjectId> tied;
  for (int i = 0; i < reply.returns_size() && i < static_cast<int>(return_ids.size()); ++i) {
    if (reply.returns(i).contained_refs_size() == 0) continue;
    if (auto id = ObjectId::FromBinary(return_ids[static_cast<size_t>(i)]); id.ok()) {
      tied.push_back(*id);
    }
  }
  if (tied.empty() || !caller || !tracker_) return;
  auto owner = WorkerId::FromBinary(caller->peer().worker_id());
  if (!owner.ok()) return;
  tracker_->TieHolds(*owner, tied);
  tracker_->WatchPeer(caller);
}

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
  resolver_->Resolve(ref, std::move(done));
}

StatusOr<std::vector<ValuePtr>> CoreWorker::Get(std::span<const ObjectRef> refs,
                                                Deadline deadline) {
  auto gather = std::make_shared<ValueGather>(refs.size());
  for (size_t i = 0; i < refs.size(); ++i) {
    Resolve(refs[i].ToProto(), [gather, i](ValuePtr v) { gather->Set(i, std::move(v)); });
  }
  size_t ready = blocked_->Wait(*gather, refs.size(), deadline);
  if (ready < refs.size()) {
    return Status::DeadlineExceeded("get timed out: " + std::to_string(refs.size() - ready) +
                                    " of " + std::to_string(refs.size()) +
                                    " objects were not ready");
  }
  return gather->Take();
}

StatusOr<std::vector<bool>> CoreWorker::Wait(std::span<const ObjectRef> refs, size_t num_ready,
                                             Deadline deadline) {
  auto gather = std::make_shared<ValueGather>(refs.size());
  for (size_t i = 0; i < refs.size(); ++i) {
    Resolve(refs[i].ToProto(), [gather, i](ValuePtr v) { gather->Set(i, std::move(v)); });
  }
  blocked_->Wait(*gather, std::min(num_ready, refs.size()), deadline);
  return gather->Flags();
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

CoreWorker::Stats CoreWorker::GetStats() {
  Stats s;
  s.owned_objects = refs_->NumTracked();
  s.stored_values = store_->Size();
  s.local_segments = segments_->Size();
  s.borrowed_objects = tracker_ ? tracker_->NumBorrowed() : 0;
  s.value_holds = tracker_ ? tracker_->NumHolds() : 0;
  s.borrow_requests = tracker_ ? tracker_->NumRegistrationRequests() : 0;
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
  // Bounded: the value arrives in a message (and from user options). An
  // asyncio actor's one executor thread hands calls to its event loop, which
  // bounds the calls in flight (TaskExecutor::ExecuteAsync).
  constexpr int kMaxConcurrency = 1024;
  int concurrency = actor.creation_task().is_asyncio()
                        ? 1
                        : std::clamp(actor.options().max_concurrency(), 1, kMaxConcurrency);

  proto::TaskSpec creation = actor.creation_task();
  // Its own caller queue: the creator's method calls start at sequence 0 too.
  creation.set_caller_id("__creation__");
  creation.set_sequence_number(0);
  // The creator holds the constructor's arguments until they were read.
  std::string creator = creation.caller_address();
  // A restartable actor's creator holds them until the actor is dead for good.
  std::string structure_id = creation.args_size() > 0 && actor.options().max_restarts() == 0
                                 ? creation.args(0).object_id()
                                 : "";
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
