// CoreWorker, caller side of actors and remote functions: creating actors,
// submitting tasks (arguments, the transfers they need, the replies), and
// what the Head knows of actors. The class and its thread contract: core_worker.h.
#include <google/protobuf/message_lite.h>

#include <algorithm>
#include <atomic>

#include "ferry/common/config.h"
#include "ferry/common/host_id.h"
#include "ferry/common/logging.h"
#include "ferry/core/core_worker.h"
#include "ferry/core/error_value.h"
#include "ferry/core/value_gather.h"
#include "ferry/transport/transport_table.h"

namespace ferry::core {

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
  spec->set_is_asyncio(creation.is_asyncio);
  std::vector<ObjectId> temps;
  FERRY_ASSIGN_OR_RETURN(ObjectId structure_id, WriteStructure(creation.args, spec, &temps));
  // The worker may fetch the constructor's arguments whenever it starts:
  // they are held until it says the constructor ran (FREE_OBJECTS of the
  // structure's id), with the structure's segment and nested refs, or at the
  // latest until the actor is dead for good (ReleaseCreationArgs: a
  // restartable actor's worker does not release them, since each restart
  // runs the constructor again).
  tracker_->Hold(structure_id, creation.args.refs);
  {
    MutexLock lock(mu_);
    creation_args_[actor_id] = structure_id;
  }
  for (const ObjectRef& ref : creation.args.refs) FillDepArg(ref, actor_id, spec->add_args());
  auto release = [&] { ReleaseCreationArgs(actor_id); };
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

StatusOr<CoreWorker::PreparedCall> CoreWorker::PrepareCall(const TaskCall& call,
                                                           proto::TaskSpec* spec) {
  if (call.num_returns < 0) return Status::InvalidArgument("num_returns must be >= 0");
  spec->set_task_id(TaskId::Random().Binary());
  spec->set_caller_id(options_.worker_id.Binary());
  spec->set_caller_address(address_);
  spec->set_caller_host(HostId());
  spec->set_method(call.method);
  spec->set_tensor_transport(call.tensor_transport);
  spec->set_max_retries(call.max_retries);
  if (call.max_retries != 0) spec->set_retry_exceptions(call.retry_exceptions);
  PreparedCall prepared;
  FERRY_RETURN_IF_ERROR(CountDeps(call.args.refs, &prepared.counted));
  StatusOr<ObjectId> written = WriteStructure(call.args, spec, &prepared.temps);
  if (!written.ok()) {
    if (!prepared.counted.empty()) refs_->RemoveSubmittedTaskRefs(prepared.counted);
    return written.status();
  }
  // Borrowed top-level arguments stay borrowed until the task is done (the
  // owned ones are counted as submitted above).
  if (prepared.counted.size() < call.args.refs.size()) {
    std::vector<ObjectRef> borrowed;
    for (const ObjectRef& ref : call.args.refs) {
      if (!tracker_->Owns(ref)) borrowed.push_back(ref);
    }
    tracker_->Hold(*written, borrowed);
    auto& temps = prepared.temps;
    if (std::find(temps.begin(), temps.end(), *written) == temps.end()) temps.push_back(*written);
  }
  for (int i = 0; i < call.num_returns; ++i) {
    ObjectRef ref{ObjectId::Random(), address_, options_.worker_id};
    (void)refs_->AddOwnedObject(ref.id);  // fresh random id: never tracked yet
    refs_->AddLocalRef(ref.id);
    spec->add_return_ids(ref.id.Binary());
    prepared.return_ids.push_back(ref.id);
    prepared.returns.push_back(std::move(ref));
  }
  return prepared;
}

StatusOr<std::vector<ObjectRef>> CoreWorker::SubmitTask(const TaskCall& call,
                                                        proto::LeaseWorker lease) {
  if (!transport::IsObjectStore(call.tensor_transport)) {
    return Status::InvalidArgument(
        "tensor_transport is only supported on actor methods; a remote function's returns go "
        "through the object store");
  }
  proto::TaskSpec spec;
  FERRY_ASSIGN_OR_RETURN(PreparedCall p, PrepareCall(call, &spec));
  auto transfers = std::make_shared<rdt::TaskTransfers>();
  task_submitter_->Submit(std::move(spec), call.args.refs, std::move(lease),
                          [this, ids = p.return_ids, counted = p.counted, temps = p.temps,
                           transfers](const ActorId& worker, proto::PushTaskReply reply) {
                            OnTaskDone(worker, ids, counted, temps, transfers, std::move(reply));
                          });
  return std::move(p.returns);
}

std::unique_ptr<TaskSubmitter> CoreWorker::MakeTaskSubmitter() {
  // Connecting to the Head may block: not on the caller's (io) thread.
  auto head_call = [this](proto::Method method, auto request,
                          std::function<void(Status, std::string_view)> reply) {
    bool posted = background_->Post([this, method, request = std::move(request), reply] {
      auto head = HeadChannel();
      if (!head.ok()) return reply(head.status(), {});
      (*head)->Call(method, request, reply);
    });
    if (!posted) reply(Status::Unavailable("ferry is shutting down"), {});
  };
  TaskSubmitter::Ports ports;
  ports.await_deps = [this](const std::vector<ObjectRef>& deps,
                            std::function<void(ValuePtr)> ready) {
    auto gather = std::make_shared<ValueGather>(deps.size());
    auto left = std::make_shared<std::atomic<size_t>>(deps.size());
    for (size_t i = 0; i < deps.size(); ++i) {
      resolver_->Resolve(deps[i].ToProto(), [gather, left, i, ready](ValuePtr v) {
        gather->Set(i, std::move(v));
        if (left->fetch_sub(1) != 1) return;
        ValuePtr error;
        for (const ValuePtr& value : gather->Take()) {
          if (!error && !ValueStatus(*value).ok()) error = value;
        }
        ready(std::move(error));
      });
    }
  };
  ports.lease = [head_call](const proto::LeaseWorker& req, TaskSubmitter::LeaseReplyFn reply) {
    head_call(proto::LEASE_WORKER, req, [reply](Status s, std::string_view payload) {
      proto::LeaseWorkerReply granted;
      if (s.ok() && !granted.ParseFromArray(payload.data(), int(payload.size())))
        s = Status::Internal("malformed LeaseWorkerReply");
      if (!s.ok()) return reply(s.WithContext("leasing a worker from the head"));
      reply(std::move(granted));
    });
  };
  ports.give_back = [head_call](const proto::ReturnWorker& req) {
    head_call(proto::RETURN_WORKER, req, [](Status, std::string_view) {});
  };
  ports.push = [this](const ActorId& worker, proto::TaskSpec spec,
                      const std::vector<ObjectRef>& deps, TaskSubmitter::ReplyFn reply) {
    for (const ObjectRef& ref : deps) FillDepArg(ref, worker, spec.add_args());
    submitter_->Submit(worker, std::move(spec), std::move(reply));
  };
  return std::make_unique<TaskSubmitter>(std::move(ports));
}

StatusOr<std::vector<ObjectRef>> CoreWorker::SubmitActorTask(const ActorId& actor,
                                                             const TaskCall& call,
                                                             std::vector<std::string>* warnings) {
  FERRY_RETURN_IF_ERROR(transport::CheckTensorTransport(call.tensor_transport));
  FERRY_RETURN_IF_ERROR(transfer_owner_->CheckSubmission(actor, call.tensor_transport));
  auto spec = std::make_shared<proto::TaskSpec>();
  spec->set_actor_id(actor.Binary());
  FERRY_ASSIGN_OR_RETURN(PreparedCall prepared, PrepareCall(call, spec.get()));
  std::vector<ObjectId> rdt_deps = transfer_owner_->NoteUses(call.args.refs, actor, warnings);
  std::vector<ObjectId> return_ids = std::move(prepared.return_ids);
  if (!transport::IsObjectStore(call.tensor_transport)) {
    transfer_owner_->Track(return_ids, actor, call.tensor_transport);
  }
  // The transfers the task's arguments need (noted before the task is
  // sent): a system error in the task is theirs.
  auto transfers = std::make_shared<rdt::TaskTransfers>();
  auto done = [this, actor, return_ids, counted = std::move(prepared.counted),
               temps = std::move(prepared.temps), transfers](proto::PushTaskReply reply) {
    OnTaskDone(actor, return_ids, counted, temps, transfers, std::move(reply));
  };
  auto deps = call.args.refs;
  if (rdt_deps.empty()) {
    for (const ObjectRef& ref : deps) FillDepArg(ref, actor, spec->add_args());
    if (!deps.empty()) *transfers = rdt::TaskTransfers::Of(*spec);
    submitter_->Submit(actor, std::move(*spec), std::move(done));
    return std::move(prepared.returns);
  }
  // An RDT argument's transfer can only be arranged once its producer has
  // returned (its size and location are known only then): hold this task (its place in the actor's
  // order is reserved) until every RDT dependency is ready.
  uint64_t ticket = submitter_->Reserve(actor);
  auto remaining = std::make_shared<std::atomic<size_t>>(rdt_deps.size());
  auto finish = [this, spec, deps, actor, ticket, done, transfers]() mutable {
    for (const ObjectRef& ref : deps) FillDepArg(ref, actor, spec->add_args());
    *transfers = rdt::TaskTransfers::Of(*spec);
    submitter_->SubmitReserved(actor, ticket, std::move(*spec), std::move(done));
  };
  auto shared_finish = std::make_shared<decltype(finish)>(std::move(finish));
  for (const ObjectId& id : rdt_deps) {
    store_->Subscribe(id, [remaining, shared_finish](ValuePtr) {
      // Nothing in `finish` blocks, so it may run here (usually the io thread).
      if (remaining->fetch_sub(1) == 1) (*shared_finish)();
    });
  }
  return std::move(prepared.returns);
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
  const std::string producer = locator_->LastAddress(actor);
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

bool CoreWorker::IsDead(const ActorId& actor, Status* cause) {
  return submitter_->IsDead(actor, cause);
}

StatusOr<std::string> CoreWorker::Address(const ActorId& actor, bool wait_until_started,
                                          Deadline deadline) {
  return locator_->Address(actor, wait_until_started, deadline);
}

StatusOr<std::string> CoreWorker::Host(const ActorId& actor, Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(proto::ActorInfo info, locator_->GetActorInfo(actor, false, deadline));
  return info.host();
}

Status CoreWorker::StoreTensors(const ObjectId& id, std::vector<tensor::Tensor> tensors,
                                proto::RdtInfo* info) {
  return holder_->Store(id, std::move(tensors), info);
}

void CoreWorker::ResolveTensors(const proto::TaskArg& arg, const ValuePtr& value,
                                std::function<void(StatusOr<std::vector<tensor::Tensor>>)> done) {
  holder_->Receive(arg, value, std::move(done));
}

void CoreWorker::OnActorRestarted(const ActorId& actor, const Status& cause) {
  if (!transfer_owner_) return;
  // Its RDT objects' tensors were in the old process; its groups are gone.
  Status lost = Status::Unavailable("actor " + actor.Hex() + " restarted: " + cause.message());
  transfer_owner_->OnProducerRestarted(actor, lost);
  transfer_owner_->OnActorDied(actor, lost);
}

void CoreWorker::ReleaseCreationArgs(const ActorId& actor) {
  ObjectId structure_id;
  {
    MutexLock lock(mu_);
    auto it = creation_args_.find(actor);
    if (it == creation_args_.end()) return;
    structure_id = it->second;
    creation_args_.erase(it);
  }
  segments_->Free(structure_id);
  tracker_->Release(structure_id);
}

Status CoreWorker::KillActor(const ActorId& actor, bool no_restart) {
  FERRY_ASSIGN_OR_RETURN(auto head, HeadChannel());
  proto::KillActor req;
  req.set_actor_id(actor.Binary());
  req.set_no_restart(no_restart);
  auto reply = head->CallSync(proto::KILL_ACTOR, req,
                              Deadline::After(Config::Get().kill_grace + std::chrono::seconds(10)));
  if (!reply.ok()) return reply.status().WithContext("killing actor");
  // Without no_restart the Head decides (restart or death) and says so.
  if (!no_restart) return Status::Ok();
  ReleaseCreationArgs(actor);
  Status cause = Status::Unavailable("the actor was killed by ferry.kill()");
  submitter_->MarkDead(actor, cause);
  transfer_owner_->OnActorDied(actor, Status::Unavailable("actor " + actor.Hex() +
                                                          " was killed by ferry.kill()"));
  return Status::Ok();
}

}  // namespace ferry::core
