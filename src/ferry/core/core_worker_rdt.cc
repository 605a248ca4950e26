// CoreWorker's direct tensor transport: transport names, the producer's
// transfer handlers, the receiver's side of two-sided transfers and the
// owner's orchestration. One-sided pulls are in core_worker_one_sided.cc,
// collective groups in core_worker_groups.cc. See DESIGN.md "Direct tensor
// transport".
#include <unistd.h>

#include <cstring>
#include <map>

#include "ferry/common/config.h"
#include "ferry/common/fault.h"
#include "ferry/common/logging.h"
#include "ferry/core/core_worker.h"
#include "ferry/core/error_value.h"
#include "ferry/core/rdt_util.h"
#include "ferry/rpc/parse.h"
#include "ferry/transport/registry.h"

namespace ferry::core {
namespace {

using rdt::LogTransfer;
using rdt::MicrosSince;
using rdt::TotalBytes;
using rdt::Views;

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
    PullArgTensors(*id, value, std::move(done));  // core_worker_one_sided.cc
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
    // Same host: read the producer's memory through the shm export it adds
    // to small objects, without waking it; else ask it for the bytes.
    if (CanPullFromThisHost(rdt)) {
      PullArgTensors(*id, value, std::move(done));
    } else {
      FetchTensorsInline(*id, value, std::move(done));
    }
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
    (target == obj.producer ? obj.sent_to_producer : obj.sent_to_other) = true;
    if (obj.sent_to_producer && obj.sent_to_other && !obj.warned && warnings != nullptr) {
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

}  // namespace ferry::core
