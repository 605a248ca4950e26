// CoreWorker's direct tensor transport: the producer's tensor store and
// transfer handlers, the owner's orchestration of transfers, and collective
// groups. See DESIGN.md "Direct tensor transport".
#include <unistd.h>

#include <cstring>
#include <map>

#include "ferry/collective/head_kv_store.h"
#include "ferry/common/config.h"
#include "ferry/common/fault.h"
#include "ferry/common/logging.h"
#include "ferry/core/core_worker.h"
#include "ferry/core/error_value.h"
#include "ferry/rpc/parse.h"
#include "ferry/transport/registry.h"

namespace ferry::core {
namespace {

// Backends a transport name can use: "gloo" objects move over groups made
// with backend "gloo" or "torch_gloo".
bool BackendServes(const std::string& backend, const std::string& transport) {
  if (transport == "gloo") return backend == "gloo" || backend == "torch_gloo";
  return backend == transport;
}

// A transport failure is a system error: TransportError at the language edge.
Status AsTransportError(const Status& s, const std::string& group) {
  if (s.code() == StatusCode::kFailedPrecondition) return s;  // group missing/destroyed
  return Status::Aborted("tensor transfer in collective group '" + group + "' failed: " +
                         s.ToString());
}

std::vector<transport::BufferView> Views(const std::vector<tensor::Tensor>& tensors) {
  std::vector<transport::BufferView> views;
  views.reserve(tensors.size());
  for (const auto& t : tensors) views.push_back({t.data(), t.nbytes()});
  return views;
}

int64_t MicrosSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
}

uint64_t TotalBytes(const proto::RdtInfo& rdt) {
  uint64_t total = 0;
  for (const auto& meta : rdt.tensors()) total += meta.nbytes();
  return total;
}

void LogTransfer(TransferLog& log, const ObjectId& id, std::string transport, std::string peer,
                 uint64_t bytes, Clock::time_point start, bool pooled, const Status& status,
                 std::string direction = "recv") {
  TransferRecord r;
  r.object_id = id;
  r.transport = std::move(transport);
  r.direction = std::move(direction);
  r.peer = std::move(peer);
  r.bytes = bytes;
  r.micros = MicrosSince(start);
  r.pooled = pooled;
  if (!status.ok()) r.error = status.ToString();
  log.Add(std::move(r));
}

// The transports a one-sided object is exported with: "auto" is shm (this
// host) plus nixl (across hosts), as far as this build has them.
std::vector<std::string> ExportTransports(const std::string& transport) {
  if (transport != "auto") return {transport};
  std::vector<std::string> names;
  for (const std::string& t : transport::AvailableOneSidedTransports()) {
    if (t == "shm" || t == "nixl") names.push_back(t);
  }
  return names;
}

// Which export of `rdt` a receiver pulls with: shm when the producer is on
// this host, else nixl.
StatusOr<const proto::TensorExport*> ChooseExport(const proto::RdtInfo& rdt) {
  const proto::TensorExport* nixl = nullptr;
  for (const proto::TensorExport& e : rdt.exports()) {
    if (e.transport() == "shm" && transport::IsLocalEndpoint("shm", e.endpoint())) return &e;
    if (e.transport() == "nixl") nixl = &e;
  }
  if (nixl != nullptr) return nixl;
  if (rdt.exports_size() == 0) {
    return Status::FailedPrecondition("the producer exported no pull descriptors for this '" +
                                      rdt.transport() + "' object");
  }
  return Status::FailedPrecondition(
      "the tensors were exported with '" + rdt.exports(0).transport() + "', which cannot reach " +
      "them from this host; use tensor_transport='nixl' (or 'auto') across hosts");
}

}  // namespace

bool IsTwoSidedTransport(const std::string& transport) {
  return transport == "gloo" || transport == "nccl";
}

bool IsOneSidedTransport(const std::string& transport) {
  return transport == "nixl" || transport == "shm" || transport == "cuda_ipc" || transport == "auto";
}

bool IsObjectStoreTransport(const std::string& transport) {
  return transport.empty() || transport == "object_store";
}

std::vector<std::string> AvailableTensorTransports() {
  std::vector<std::string> names = {"object_store", "gloo"};
  bool shm = false;
  for (const std::string& t : transport::AvailableOneSidedTransports()) {
    names.push_back(t);
    shm = shm || t == "shm";
  }
  if (shm) names.push_back("auto");
  return names;
}

Status CheckTensorTransport(const std::string& transport) {
  if (IsObjectStoreTransport(transport)) return Status::Ok();
  std::string names;
  for (const auto& t : AvailableTensorTransports()) {
    if (t == transport) return Status::Ok();
    names += (names.empty() ? "" : ", ") + t;
  }
  return Status::Unimplemented("tensor_transport '" + transport +
                               "' is not available in this build of ferry (available: " + names + ")");
}

void CoreWorker::RegisterRdtHandlers() {
  dispatcher_->Register(proto::SEND_TENSORS, [this](const std::shared_ptr<rpc::Channel>&,
                                                    std::string_view payload, rpc::Responder r) {
    HandleSendTensors(payload, std::move(r));
  });
  dispatcher_->Register(proto::FETCH_TENSORS, [this](const std::shared_ptr<rpc::Channel>&,
                                                     std::string_view payload, rpc::Responder r) {
    HandleFetchTensors(payload, std::move(r));
  });
  dispatcher_->Register(proto::JOIN_GROUP, [this](const std::shared_ptr<rpc::Channel>&,
                                                  std::string_view payload, rpc::Responder r) {
    HandleJoinGroup(payload, std::move(r));
  });
  dispatcher_->Register(proto::LEAVE_GROUP, [this](const std::shared_ptr<rpc::Channel>&,
                                                   std::string_view payload, rpc::Responder r) {
    proto::LeaveGroup req;
    if (!rpc::ParseRequest(payload, &req, r)) return;
    groups_->Leave(req.name());
    r.Reply(proto::Empty());
  });
}

// --- producer side ----------------------------------------------------------

// The tensors this process keeps for the object named in a request.
StatusOr<std::vector<tensor::Tensor>> CoreWorker::HeldTensors(const std::string& object_id) {
  FERRY_ASSIGN_OR_RETURN(ObjectId id, ObjectId::FromBinary(object_id));
  std::optional<std::vector<tensor::Tensor>> tensors = tensors_->Get(id);
  if (!tensors) {
    return Status::DataLoss("this actor no longer holds the tensors of object " + id.Hex());
  }
  return std::move(*tensors);
}

Status CoreWorker::StoreTensors(const ObjectId& id, std::vector<tensor::Tensor> tensors,
                                proto::RdtInfo* info) {
  info->set_producer_actor_id(options_.is_driver ? "" : options_.actor_id.Binary());
  info->set_producer_address(address_);
  std::vector<transport::OneSidedTransport*> exporters;
  if (IsOneSidedTransport(info->transport())) {
    for (const tensor::Tensor& t : tensors) {
      if (t.meta().device() != "cpu") {
        return Status::InvalidArgument(
            "tensor_transport='" + info->transport() + "' moves CPU tensors only in this build (no "
            "CUDA); got a tensor on " + t.meta().device() + ": move it to the CPU first");
      }
    }
    // Non-contiguous tensors are exported as the span of storage their
    // strides cover; the receiver rebuilds the same strides.
    const std::vector<transport::BufferView> views = Views(tensors);
    for (const std::string& name : ExportTransports(info->transport())) {
      auto t = OneSided(name);
      if (!t.ok()) {
        if (info->transport() == "auto") continue;  // auto uses what this build has
        return t.status();
      }
      auto exported = (*t)->Export(views);
      if (!exported.ok()) {
        for (auto* e : exporters) e->Release(views);
        return exported.status().WithContext("exporting tensors for '" + name + "'");
      }
      proto::TensorExport* out = info->add_exports();
      out->set_transport(name);
      out->set_endpoint(std::move(exported->endpoint));
      for (std::string& d : exported->descriptors) out->add_descriptors(std::move(d));
      exporters.push_back(*t);
    }
    if (exporters.empty()) {
      return Status::Unimplemented("no one-sided transport for '" + info->transport() +
                                   "' is available in this build");
    }
  }
  if (!exporters.empty()) {
    MutexLock lock(transports_mu_);
    exported_[id] = exporters;
  }
  Status s = tensors_->Put(id, tensors);
  if (!s.ok() && !exporters.empty()) {
    {
      MutexLock lock(transports_mu_);
      exported_.erase(id);
    }
    for (auto* e : exporters) e->Release(Views(tensors));
  }
  return s;
}

void CoreWorker::DropTensors(const ObjectId& id) {
  std::optional<std::vector<tensor::Tensor>> tensors = tensors_->Take(id);
  std::vector<transport::OneSidedTransport*> exporters;
  {
    MutexLock lock(transports_mu_);
    auto it = exported_.find(id);
    if (it != exported_.end()) {
      exporters = std::move(it->second);
      exported_.erase(it);
    }
  }
  if (tensors) {
    for (auto* e : exporters) e->Release(Views(*tensors));
  }
  // `tensors` dies here, outside every lock: a DLPack deleter may run.
}

StatusOr<transport::OneSidedTransport*> CoreWorker::OneSided(const std::string& name) {
  MutexLock lock(transports_mu_);
  auto it = one_sided_.find(name);
  if (it != one_sided_.end()) return it->second.get();
  // Made under the lock so that two threads never make two (a UCX context
  // takes a few milliseconds, once per process).
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<transport::OneSidedTransport> t,
                         transport::CreateOneSidedTransport(name));
  transport::OneSidedTransport* raw = t.get();
  one_sided_[name] = std::move(t);
  return raw;
}

void CoreWorker::HandleSendTensors(std::string_view payload, rpc::Responder responder) {
  proto::SendTensors req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  auto tensors = HeldTensors(req.object_id());
  if (!tensors.ok()) {
    responder.ReplyError(tensors.status());
    return;
  }
  auto group = groups_->Get(req.group());
  if (!group.ok()) {
    responder.ReplyError(group.status());
    return;
  }
  if (Status fault = InjectFault("transfer.send"); !fault.ok()) {
    groups_->Destroy(req.group(), fault);
    responder.ReplyError(fault);
    return;
  }
  auto shared = std::make_shared<rpc::Responder>(std::move(responder));
  auto keep = std::make_shared<std::vector<tensor::Tensor>>(std::move(*tensors));
  std::string name = req.group();
  uint64_t bytes = 0;
  for (const auto& t : *keep) bytes += t.nbytes();
  Clock::time_point start = Clock::now();
  ObjectId oid = ObjectId::FromBinary(req.object_id()).value();  // checked by HeldTensors
  (*group)->Send(req.dst_rank(), req.tag(), Views(*keep),
                 [this, shared, keep, name, bytes, start, oid](Status s) {
                   LogTransfer(*transfer_log_, oid, "gloo", "group " + name, bytes, start, true, s,
                               "send");
                   if (s.ok()) {
                     shared->Reply(proto::Empty());
                     return;
                   }
                   Status err = AsTransportError(s, name);
                   groups_->Destroy(name, err);
                   shared->ReplyError(err);
                 });
}

void CoreWorker::HandleFetchTensors(std::string_view payload, rpc::Responder responder) {
  proto::FetchTensors req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  auto tensors = HeldTensors(req.object_id());
  if (!tensors.ok()) {
    responder.ReplyError(tensors.status());
    return;
  }
  if (Status fault = InjectFault("transfer.fetch"); !fault.ok()) {
    responder.ReplyError(fault);
    return;
  }
  if (req.value_id().empty()) {
    // A small object: the bytes go back in the reply, copied now.
    proto::ObjectValueProto value;
    value.set_format("tensors");
    std::string bytes;
    for (const auto& t : *tensors) {
      value.add_buffer_sizes(t.nbytes());
      value.add_buffer_offsets(bytes.size());
      bytes.append(static_cast<const char*>(t.data()), t.nbytes());
    }
    value.set_inline_data(std::move(bytes));
    responder.Reply(value);
    return;
  }
  auto value_id = ObjectId::FromBinary(req.value_id());
  if (!value_id.ok()) {
    responder.ReplyError(value_id.status());
    return;
  }
  // The copy into shared memory can be large: not on the io thread.
  auto shared = std::make_shared<rpc::Responder>(std::move(responder));
  auto keep = std::make_shared<std::vector<tensor::Tensor>>(std::move(*tensors));
  background_->Post([this, shared, keep, vid = *value_id]() {
    SerializedValue v;
    v.format = "tensors";
    for (const auto& t : *keep) {
      v.buffers.emplace_back(static_cast<const uint8_t*>(t.data()), t.nbytes());
    }
    auto written = WriteValue(vid, v);
    if (!written.ok()) {
      shared->ReplyError(written.status());
      return;
    }
    shared->Reply(*written);
  });
}

void CoreWorker::HandleJoinGroup(std::string_view payload, rpc::Responder responder) {
  auto req = std::make_shared<proto::JoinGroup>();
  if (!rpc::ParseRequest(payload, req.get(), responder)) return;
  auto shared = std::make_shared<rpc::Responder>(std::move(responder));
  collective_queue_->Post([this, req, shared] {
    auto head = HeadChannel();
    if (!head.ok()) {
      shared->ReplyError(head.status());
      return;
    }
    collective::HeadKvStore store(*head);
    Status s = groups_->Join(*req, store);
    if (s.ok()) {
      shared->Reply(proto::Empty());
    } else {
      shared->ReplyError(s.WithContext("joining collective group '" + req->name() + "'"));
    }
  });
}

// --- receiver side ----------------------------------------------------------

void CoreWorker::ResolveTensors(const proto::TaskArg& arg, const ValuePtr& value,
                                std::function<void(StatusOr<std::vector<tensor::Tensor>>)> done) {
  const proto::RdtInfo& rdt = value->rdt();
  auto id = ObjectId::FromBinary(arg.object_id());
  if (!id.ok()) {
    done(Status::InvalidArgument("RDT argument without its object id"));
    return;
  }
  if (rdt.producer_address() == address_) {
    // Passed back to its producer: the very same tensors, no copy.
    auto tensors = tensors_->Get(*id);
    if (!tensors) {
      done(Status::DataLoss("the tensors of object " + id->Hex() + " were already freed"));
      return;
    }
    done(std::move(*tensors));
    return;
  }
  if (IsOneSidedTransport(rdt.transport())) {
    // The receiver pulls; the producer takes no part.
    auto shared_done = std::make_shared<std::function<void(StatusOr<std::vector<tensor::Tensor>>)>>(
        std::move(done));
    auto pull = [this, id = *id, value, shared_done] {
      Deadline deadline = Deadline::After(Config::Get().transfer_timeout);
      auto pulled = PullTensors(std::span<const ObjectId>(&id, 1), std::span<const ValuePtr>(&value, 1),
                                deadline);
      if (!pulled.ok()) {
        Status s = pulled.status();
        if (s.code() == StatusCode::kDeadlineExceeded) {
          s = Status::Aborted("pulling the tensors timed out after FERRY_TRANSFER_TIMEOUT_S: " +
                              s.message());
        }
        (*shared_done)(s);
        return;
      }
      (*shared_done)(std::move((*pulled)[0]));
    };
    // A small shm pull is a few microseconds and cannot block (a dead
    // producer fails at once): done here, it saves a thread hop. Anything
    // else runs on the transfer queue, never on the io thread.
    auto chosen = ChooseExport(rdt);
    if (chosen.ok() && (*chosen)->transport() == "shm" &&
        static_cast<int64_t>(TotalBytes(rdt)) <= Config::Get().inline_tensor_bytes) {
      pull();
      return;
    }
    if (!transfer_queue_->Post(std::move(pull))) {
      (*shared_done)(Status::Unavailable("ferry is shutting down"));
    }
    return;
  }
  if (!arg.has_tensor_recv()) {
    done(Status::FailedPrecondition(
        "an RDT object (transport '" + rdt.transport() + "') reached an actor that is not its "
        "producer without a transfer: only the process that owns the ObjectRef can pass it on"));
    return;
  }
  const proto::TensorRecv& recv = arg.tensor_recv();
  if (Status fault = InjectFault("transfer.recv"); !fault.ok()) {
    done(Status::Aborted(fault.message()));
    return;
  }
  if (recv.inline_fetch()) {
    FetchTensorsInline(*id, value, std::move(done));
    return;
  }
  auto group = groups_->Get(recv.group());
  if (!group.ok()) {
    done(group.status());
    return;
  }
  auto tensors = std::make_shared<std::vector<tensor::Tensor>>();
  bool all_pooled = true;
  for (const proto::TensorMetaProto& meta : rdt.tensors()) {
    if (meta.device() != "cpu" && rdt.transport() == "gloo") {
      done(Status::InvalidArgument("gloo moves CPU tensors only; got a tensor on " + meta.device()));
      return;
    }
    bool pooled = false;
    auto t = tensor::Tensor::AllocateCpu(meta, *cpu_allocator_, &pooled);
    all_pooled = all_pooled && pooled;
    if (!t.ok()) {
      done(t.status());
      return;
    }
    tensors->push_back(std::move(t).value());
  }
  std::string name = recv.group();
  auto shared_done = std::make_shared<std::function<void(StatusOr<std::vector<tensor::Tensor>>)>>(
      std::move(done));
  auto record = std::make_shared<TransferRecord>();
  record->object_id = *id;
  record->transport = rdt.transport();
  record->peer = rdt.producer_address();
  record->bytes = TotalBytes(rdt);
  record->pooled = all_pooled;
  Clock::time_point start = Clock::now();
  (*group)->Recv(recv.src_rank(), recv.tag(), Views(*tensors),
                 [this, tensors, shared_done, name, record, start](Status s) {
                   record->micros = MicrosSince(start);
                   if (!s.ok()) {
                     Status err = AsTransportError(s, name);
                     record->error = err.ToString();
                     transfer_log_->Add(std::move(*record));
                     groups_->Destroy(name, err);
                     (*shared_done)(err);
                     return;
                   }
                   transfer_log_->Add(std::move(*record));
                   (*shared_done)(std::move(*tensors));
                 });
}

void CoreWorker::FetchTensorsInline(const ObjectId& id, const ValuePtr& value,
                                    std::function<void(StatusOr<std::vector<tensor::Tensor>>)> done) {
  auto req = std::make_shared<proto::FetchTensors>();
  req->set_object_id(id.Binary());
  auto shared_done = std::make_shared<std::function<void(StatusOr<std::vector<tensor::Tensor>>)>>(
      std::move(done));
  Clock::time_point start = Clock::now();
  CallPeer(value->rdt().producer_address(), proto::FETCH_TENSORS, req,
           [this, id, value, shared_done, start](Status s, std::string_view payload) {
             if (!s.ok()) {
               if (s.code() == StatusCode::kUnavailable) {
                 s = Status::Unavailable("the actor holding the tensors died: " + s.message());
               }
               LogTransfer(*transfer_log_, id, "inline", value->rdt().producer_address(),
                           TotalBytes(value->rdt()), start, false, s);
               (*shared_done)(s);
               return;
             }
             bool all_pooled = true;
             proto::ObjectValueProto bytes;
             if (!bytes.ParseFromArray(payload.data(), static_cast<int>(payload.size())) ||
                 bytes.buffer_sizes_size() != value->rdt().tensors_size()) {
               (*shared_done)(Status::Internal("malformed inline tensors"));
               return;
             }
             std::vector<tensor::Tensor> tensors;
             for (int i = 0; i < bytes.buffer_sizes_size(); ++i) {
               const proto::TensorMetaProto& meta = value->rdt().tensors(i);
               uint64_t off = bytes.buffer_offsets(i), n = bytes.buffer_sizes(i);
               if (n != meta.nbytes() || off + n > bytes.inline_data().size()) {
                 (*shared_done)(Status::Internal("inline tensor sizes do not match their metadata"));
                 return;
               }
               bool pooled = false;
               auto t = tensor::Tensor::AllocateCpu(meta, *cpu_allocator_, &pooled);
               if (!t.ok()) {
                 (*shared_done)(t.status());
                 return;
               }
               all_pooled = all_pooled && pooled;
               if (n > 0) std::memcpy(t->data(), bytes.inline_data().data() + off, n);
               tensors.push_back(std::move(t).value());
             }
             LogTransfer(*transfer_log_, id, "inline", value->rdt().producer_address(),
                         TotalBytes(value->rdt()), start, all_pooled, Status::Ok());
             (*shared_done)(std::move(tensors));
           });
}

void CoreWorker::CallPeer(const std::string& address, uint16_t method,
                          std::shared_ptr<const google::protobuf::MessageLite> request,
                          std::function<void(Status, std::string_view)> done) {
  if (auto channel = channels_->Peek(address)) {
    channel->Call(method, *request, std::move(done));
    return;
  }
  auto shared_done = std::make_shared<std::function<void(Status, std::string_view)>>(std::move(done));
  bool posted = background_->Post([this, address, method, request, shared_done] {
    auto channel = channels_->Get(address, Deadline::After(Config::Get().rpc_connect_timeout));
    if (!channel.ok()) {
      (*shared_done)(Status::Unavailable(address + " is unreachable: " + channel.status().message()),
                     {});
      return;
    }
    (*channel)->Call(method, *request, *shared_done);
  });
  if (!posted) (*shared_done)(Status::Unavailable("ferry is shutting down"), {});
}

// --- owner side -------------------------------------------------------------

void CoreWorker::NoteRdtUses(const std::vector<ObjectRef>& deps, const ActorId& target,
                             std::vector<std::string>* warnings, std::vector<ObjectId>* rdt_deps) {
  MutexLock lock(mu_);
  for (const ObjectRef& ref : deps) {
    if (ref.owner_id != options_.worker_id) continue;
    auto it = rdt_objects_.find(ref.id);
    if (it == rdt_objects_.end()) continue;
    if (!store_->GetIfReady(ref.id)) rdt_deps->push_back(ref.id);
    RdtObject& obj = it->second;
    obj.destinations.push_back(target);
    bool to_producer = false, to_other = false;
    for (const ActorId& d : obj.destinations) (d == obj.producer ? to_producer : to_other) = true;
    if (to_producer && to_other && !obj.warned && warnings != nullptr) {
      obj.warned = true;
      warnings->push_back(
          "RDT ObjectRef(" + ref.id.Hex() + ") is being passed back to the actor that created it "
          "and to another actor. Note that RDT objects are mutable: if the tensor is modified in "
          "place, the producer's copy changes too, and later transfers to other actors send the "
          "modified version instead of the original.");
    }
  }
}

Status CoreWorker::ArrangeTensorTransfer(const ObjectId& id, const ValuePtr& value,
                                         const ActorId& target, proto::TaskArg* arg) {
  const proto::RdtInfo& rdt = value->rdt();
  *arg->mutable_value() = *value;
  if (rdt.producer_actor_id() == target.Binary()) return Status::Ok();  // same actor: no copy
  if (!IsTwoSidedTransport(rdt.transport()) && !IsOneSidedTransport(rdt.transport())) {
    return Status::Unimplemented("tensor transport '" + rdt.transport() +
                                 "' is not available in this build");
  }
  if (!rdt.producer_actor_id().empty()) {
    auto producer = ActorId::FromBinary(rdt.producer_actor_id());
    if (!producer.ok()) return producer.status();
    if (Status cause; submitter_->IsDead(*producer, &cause)) {
      return Status::Unavailable("the actor holding the tensors of this argument is dead: " +
                                 cause.message());
    }
  }
  // One-sided: the receiver pulls with the exports in the value itself.
  if (IsOneSidedTransport(rdt.transport())) return Status::Ok();
  auto producer = ActorId::FromBinary(rdt.producer_actor_id());
  if (!producer.ok()) return producer.status();
  std::string group_name;
  int src_rank = -1, dst_rank = -1;
  uint64_t tag;
  {
    MutexLock lock(mu_);
    for (const auto& [name, group] : created_groups_) {
      if (!BackendServes(group.backend, rdt.transport())) continue;
      int s = -1, d = -1;
      for (size_t r = 0; r < group.members.size(); ++r) {
        if (group.members[r] == *producer) s = static_cast<int>(r);
        if (group.members[r] == target) d = static_cast<int>(r);
      }
      if (s >= 0 && d >= 0) {
        group_name = name;
        src_rank = s;
        dst_rank = d;
        break;
      }
    }
    tag = tag_prefix_ | (next_tag_++ & 0xffffffffull);
  }
  if (group_name.empty()) {
    return Status::FailedPrecondition(
        "the producer and the receiver of an RDT object (transport '" + rdt.transport() +
        "') share no collective group created by this process; call "
        "create_collective_group([producer, receiver, ...], backend='" + rdt.transport() +
        "') first");
  }
  proto::TensorRecv* recv = arg->mutable_tensor_recv();
  recv->set_group(group_name);
  recv->set_src_rank(src_rank);
  uint64_t total = 0;
  for (const auto& meta : rdt.tensors()) total += meta.nbytes();
  if (static_cast<int64_t>(total) <= Config::Get().inline_tensor_bytes) {
    // Small: the receiver fetches the bytes itself (one round trip); a
    // collective transfer's handshakes would cost more than the bytes.
    recv->set_inline_fetch(true);
    return Status::Ok();
  }
  recv->set_tag(tag);
  auto send = std::make_shared<proto::SendTensors>();
  send->set_object_id(id.Binary());
  send->set_group(group_name);
  send->set_dst_rank(dst_rank);
  send->set_tag(tag);
  // A failed send also fails the receive (the group is destroyed on both
  // ends, or the receive times out): the task reports it.
  CallPeer(rdt.producer_address(), proto::SEND_TENSORS, send, [](Status s, std::string_view) {
    if (!s.ok()) FERRY_LOG(WARNING) << "RDT send failed: " << s;
  });
  return Status::Ok();
}

StatusOr<std::shared_ptr<object::ReadableValue>> CoreWorker::FetchTensors(
    const ObjectId& id, const proto::ObjectValueProto& value, Deadline deadline) {
  if (!value.has_rdt()) return Status::InvalidArgument("not an RDT object");
  FERRY_ASSIGN_OR_RETURN(auto channel, channels_->Get(value.rdt().producer_address(), deadline));
  ObjectId copy_id = ObjectId::Random();
  proto::FetchTensors req;
  req.set_object_id(id.Binary());
  req.set_value_id(copy_id.Binary());
  Clock::time_point start = Clock::now();
  auto payload = channel->CallSync(proto::FETCH_TENSORS, req, deadline);
  // Mapped, not copied, on this side: no receive buffer (pooled = false).
  LogTransfer(*transfer_log_, id, "object_store", value.rdt().producer_address(),
              TotalBytes(value.rdt()), start, false, payload.status());
  if (!payload.ok()) {
    if (payload.status().code() == StatusCode::kUnavailable) {
      return Status::Unavailable("the actor holding the tensors died: " + payload.status().message());
    }
    return payload.status();
  }
  auto copy = std::make_shared<proto::ObjectValueProto>();
  if (!copy->ParseFromString(*payload)) return Status::Internal("malformed fetched tensors");
  *copy->mutable_rdt() = value.rdt();
  // Map first, then let the producer release the copy: the reader's lock
  // keeps its pages from reuse.
  auto readable = object::ReadableValue::Open(copy);
  if (copy->has_shm()) {
    proto::FreeObjects free;
    free.add_object_ids(copy_id.Binary());
    channel->Notify(proto::FREE_OBJECTS, free);
  }
  return readable;
}

StatusOr<std::vector<std::vector<tensor::Tensor>>> CoreWorker::PullTensors(
    std::span<const ObjectId> ids, std::span<const ValuePtr> values, Deadline deadline) {
  if (ids.size() != values.size()) return Status::InvalidArgument("PullTensors: ids and values differ");
  std::vector<std::vector<tensor::Tensor>> out(values.size());
  // One batch per transport, so every item of a batch moves concurrently.
  struct Batch {
    transport::OneSidedTransport* transport = nullptr;
    std::vector<transport::PullItem> items;
    std::vector<size_t> objects;  // indexes into `values`, one per object in the batch
  };
  std::map<std::string, Batch> batches;
  std::vector<bool> pooled(values.size(), true);
  for (size_t i = 0; i < values.size(); ++i) {
    const proto::ObjectValueProto& value = *values[i];
    if (!value.has_rdt()) return Status::InvalidArgument("PullTensors: not an RDT object");
    const proto::RdtInfo& rdt = value.rdt();
    if (rdt.producer_address() == address_) {
      // Ours: the very same tensors.
      auto held = tensors_->Get(ids[i]);
      if (!held) return Status::DataLoss("the tensors of object " + ids[i].Hex() + " were already freed");
      out[i] = std::move(*held);
      continue;
    }
    if (!IsOneSidedTransport(rdt.transport())) {
      return Status::FailedPrecondition("object " + ids[i].Hex() + " moves with the two-sided "
                                        "transport '" + rdt.transport() + "': it cannot be pulled");
    }
    FERRY_ASSIGN_OR_RETURN(const proto::TensorExport* exp, ChooseExport(rdt));
    if (exp->descriptors_size() != rdt.tensors_size()) {
      return Status::InvalidArgument("object " + ids[i].Hex() + ": " +
                                     std::to_string(exp->descriptors_size()) + " descriptors for " +
                                     std::to_string(rdt.tensors_size()) + " tensors");
    }
    Batch& batch = batches[exp->transport()];
    if (batch.transport == nullptr) {
      FERRY_ASSIGN_OR_RETURN(batch.transport, OneSided(exp->transport()));
    }
    batch.objects.push_back(i);
    for (int k = 0; k < rdt.tensors_size(); ++k) {
      bool from_pool = false;
      FERRY_ASSIGN_OR_RETURN(tensor::Tensor t,
                             tensor::Tensor::AllocateCpu(rdt.tensors(k), *cpu_allocator_, &from_pool));
      pooled[i] = pooled[i] && from_pool;
      batch.items.push_back({exp->endpoint(), exp->descriptors(k), {t.data(), t.nbytes()}});
      out[i].push_back(std::move(t));
    }
  }
  for (auto& [name, batch] : batches) {
    Clock::time_point start = Clock::now();
    Status s = InjectFault("transfer.pull");
    if (s.ok()) s = batch.transport->Pull(batch.items, deadline);
    if (s.code() == StatusCode::kUnavailable) {
      s = Status::Unavailable("the process holding the tensors died or freed them (" + name +
                              " pull): " + s.message());
    } else if (!s.ok() && s.code() != StatusCode::kDeadlineExceeded) {
      s = Status::Aborted("pulling tensors with '" + name + "' failed: " + s.ToString());
    }
    for (size_t i : batch.objects) {
      LogTransfer(*transfer_log_, ids[i], name, values[i]->rdt().producer_address(),
                  TotalBytes(values[i]->rdt()), start, pooled[i], s);
    }
    FERRY_RETURN_IF_ERROR(s);
  }
  return out;
}

Status CoreWorker::CreateCollectiveGroup(const std::string& name, const std::string& backend,
                                         const std::vector<ActorId>& actors) {
  if (backend != "gloo" && backend != "torch_gloo" && backend != "nccl") {
    return Status::InvalidArgument("unknown collective backend '" + backend +
                                   "'; valid: gloo, torch_gloo, nccl");
  }
  if (actors.empty()) return Status::InvalidArgument("a collective group needs at least one actor");
  for (size_t i = 0; i < actors.size(); ++i) {
    for (size_t j = i + 1; j < actors.size(); ++j) {
      if (actors[i] == actors[j]) return Status::InvalidArgument("an actor appears twice in the group");
    }
  }
  {
    MutexLock lock(mu_);
    if (created_groups_.count(name) != 0) {
      return Status::AlreadyExists("collective group '" + name + "' already exists; destroy it first");
    }
  }
  std::string prefix = "ferry/groups/" + name + "/" + ObjectId::Random().Hex() + "/";
  Deadline deadline = Deadline::After(Config::Get().transfer_timeout + Config::Get().worker_start_timeout);
  struct Join {
    std::mutex mu;
    std::condition_variable cv;
    size_t done = 0;
    Status first_error;
  };
  auto join = std::make_shared<Join>();
  std::vector<std::shared_ptr<rpc::Channel>> channels;
  for (size_t rank = 0; rank < actors.size(); ++rank) {
    FERRY_ASSIGN_OR_RETURN(proto::ActorInfo info, GetActorInfo(actors[rank], true, deadline));
    if (info.state() != proto::ActorInfo::ALIVE) {
      return Status::Unavailable("actor " + actors[rank].Hex() + " is dead: " +
                                 info.death_cause().message());
    }
    FERRY_ASSIGN_OR_RETURN(auto ch, channels_->Get(info.address(), deadline));
    channels.push_back(ch);
  }
  for (size_t rank = 0; rank < actors.size(); ++rank) {
    proto::JoinGroup req;
    req.set_name(name);
    req.set_backend(backend);
    req.set_rank(static_cast<int>(rank));
    req.set_size(static_cast<int>(actors.size()));
    req.set_kv_prefix(prefix);
    req.set_timeout_ms(Config::Get().transfer_timeout.count());
    channels[rank]->Call(proto::JOIN_GROUP, req, [join](Status s, std::string_view) {
      std::lock_guard<std::mutex> lock(join->mu);
      if (!s.ok() && join->first_error.ok()) join->first_error = s;
      join->done++;
      join->cv.notify_all();
    });
  }
  Status result;
  {
    std::unique_lock<std::mutex> lock(join->mu);
    if (!join->cv.wait_until(lock, deadline.time_point(), [&] { return join->done == actors.size(); })) {
      result = Status::DeadlineExceeded("creating collective group '" + name + "' timed out");
    } else {
      result = join->first_error;
    }
  }
  if (!result.ok()) {
    proto::LeaveGroup leave;
    leave.set_name(name);
    for (auto& ch : channels) ch->Notify(proto::LEAVE_GROUP, leave);
    return result;
  }
  MutexLock lock(mu_);
  created_groups_[name] = CollectiveGroup{name, backend, actors};
  return Status::Ok();
}

Status CoreWorker::DestroyCollectiveGroup(const std::string& name) {
  CollectiveGroup group;
  {
    MutexLock lock(mu_);
    auto it = created_groups_.find(name);
    if (it == created_groups_.end()) {
      return Status::NotFound("no collective group named '" + name + "' was created here");
    }
    group = std::move(it->second);
    created_groups_.erase(it);
  }
  proto::LeaveGroup leave;
  leave.set_name(name);
  for (const ActorId& actor : group.members) {
    auto info = GetActorInfo(actor, false, Deadline::After(std::chrono::seconds(5)));
    if (!info.ok() || info->state() != proto::ActorInfo::ALIVE) continue;
    auto ch = channels_->Get(info->address(), Deadline::After(Config::Get().rpc_connect_timeout));
    if (!ch.ok()) continue;
    (void)(*ch)->CallSync(proto::LEAVE_GROUP, leave, Deadline::After(std::chrono::seconds(10)));
  }
  return Status::Ok();
}

std::vector<CollectiveGroup> CoreWorker::CollectiveGroups() {
  MutexLock lock(mu_);
  std::vector<CollectiveGroup> out;
  for (auto& [name, g] : created_groups_) out.push_back(g);
  return out;
}

}  // namespace ferry::core
