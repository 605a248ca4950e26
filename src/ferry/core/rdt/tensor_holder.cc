// TensorHolder's producer side: storing and exporting tensors, dropping
// them, and serving the requests of owners and receivers. The receiver's
// side is in tensor_holder_receive.cc.
#include "ferry/core/rdt/tensor_holder.h"

#include <algorithm>

#include "ferry/common/config.h"
#include "ferry/common/fault.h"
#include "ferry/common/host_id.h"
#include "ferry/core/error_value.h"
#include "ferry/core/rdt/transfer_util.h"
#include "ferry/rpc/parse.h"
#include "ferry/transport/registry.h"
#include "ferry/transport/transport_table.h"

namespace ferry::core::rdt {
namespace {

// The tensors' bytes back to back in an inline value ("tensors" format).
proto::ObjectValueProto InlineTensors(const std::vector<tensor::Tensor>& tensors) {
  proto::ObjectValueProto value;
  value.set_format("tensors");
  std::string bytes;
  for (const auto& t : tensors) {
    value.add_buffer_sizes(t.nbytes());
    value.add_buffer_offsets(bytes.size());
    bytes.append(static_cast<const char*>(t.data()), t.nbytes());
  }
  value.set_inline_data(std::move(bytes));
  return value;
}

// The transports a one-sided object is exported with: itself, or for
// "auto" shm (this host) plus nixl (across hosts).
std::vector<std::string> ExportTransports(const std::string& transport) {
  const transport::TransportInfo* info = transport::FindTransport(transport);
  return info != nullptr ? info->one_sided_backends : std::vector<std::string>{};
}

// Records what the one-sided transport `name` exported for an object in its
// RdtInfo.
void AddExport(const std::string& name, transport::ExportedBuffers exported, proto::RdtInfo* info) {
  proto::TensorExport* out = info->add_exports();
  out->set_transport(name);
  out->set_endpoint(std::move(exported.endpoint));
  for (std::string& d : exported.descriptors) out->add_descriptors(std::move(d));
}

// True if one of `exporters` is a transport a user registered.
bool AnyUserTransport(const std::vector<transport::OneSidedTransport*>& exporters) {
  return std::any_of(exporters.begin(), exporters.end(), [](transport::OneSidedTransport* e) {
    return transport::IsCustom(e->name());
  });
}

template <typename Request>
bool Parse(std::string_view payload, Request* request, const ServeReplyFn& reply) {
  if (request->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return true;
  reply(Status::InvalidArgument("malformed " + request->GetTypeName()), nullptr);
  return false;
}

}  // namespace

TensorHolder::TensorHolder(Dependencies deps)
    : deps_(std::move(deps)),
      log_(static_cast<size_t>(std::max<int64_t>(0, Config::Get().transfer_log_size))),
      transfer_queue_("ferry-transfer"),
      collective_queue_("ferry-collective") {}

TensorHolder::~TensorHolder() { Shutdown(); }

void TensorHolder::Shutdown() {
  groups_.Clear();
  collective_queue_.Close();
  collective_queue_.Join();
  transfer_queue_.Close();
  transfer_queue_.Join();
}

const std::vector<uint16_t>& TensorHolder::ServedMethods() {
  static const std::vector<uint16_t> methods = {proto::SEND_TENSORS, proto::FETCH_TENSORS,
                                                proto::JOIN_GROUP, proto::LEAVE_GROUP};
  return methods;
}

void TensorHolder::Serve(uint16_t method, std::string_view payload, ServeReplyFn reply) {
  switch (method) {
    case proto::SEND_TENSORS: ServeSend(payload, std::move(reply)); return;
    case proto::FETCH_TENSORS: ServeFetch(payload, std::move(reply)); return;
    case proto::JOIN_GROUP: ServeJoin(payload, std::move(reply)); return;
    case proto::LEAVE_GROUP: {
      proto::LeaveGroup req;
      if (!Parse(payload, &req, reply)) return;
      if (req.has_cause()) {
        // Destroyed by a failure: pending transfers fail with its cause. The
        // transport object stays until the group is joined again (this may
        // run inside one of its callbacks).
        groups_.Destroy(req.name(), FromProto(req.cause()));
      } else {
        groups_.Leave(req.name());
      }
      proto::Empty empty;
      reply(Status::Ok(), &empty);
      return;
    }
    default:
      reply(Status::InvalidArgument("not a tensor-transport method: " + std::to_string(method)),
            nullptr);
  }
}

// --- storing ---------------------------------------------------------------

Status TensorHolder::Store(const ObjectId& id, std::vector<tensor::Tensor> tensors,
                           proto::RdtInfo* info) {
  info->set_producer_actor_id(deps_.actor_id);
  info->set_producer_address(deps_.address);
  std::vector<transport::OneSidedTransport*> exporters;
  if (transport::IsOneSided(info->transport())) {
    for (const tensor::Tensor& t : tensors) {
      FERRY_RETURN_IF_ERROR(transport::CheckTensorDevice(info->transport(), t.meta().device()));
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
      if (exported.ok() && exported->descriptors.size() != views.size()) {
        // A user's transport may get this wrong: receivers need one per buffer.
        (*t)->Release(views);
        exported = Status::Aborted("the transport returned " +
                                   std::to_string(exported->descriptors.size()) +
                                   " descriptors for " + std::to_string(views.size()) + " buffers");
      }
      if (!exported.ok()) {
        for (auto* e : exporters) e->Release(views);
        return exported.status().WithContext("exporting tensors for '" + name + "'");
      }
      AddExport(name, std::move(*exported), info);
      exporters.push_back(*t);
    }
    if (exporters.empty()) {
      return Status::Unimplemented("no one-sided transport for '" + info->transport() +
                                   "' is available in this build");
    }
  } else if (transport::IsTwoSided(info->transport()) && !transport::IsCustom(info->transport())) {
    // A user's transport always carries its objects: no shortcut.
    ExportForThisHost(tensors, info, &exporters);
  }
  if (!exporters.empty()) {
    MutexLock lock(transports_mu_);
    exported_[id] = exporters;
  }
  Status s = deps_.store->Put(id, tensors);
  if (!s.ok() && !exporters.empty()) {
    {
      MutexLock lock(transports_mu_);
      exported_.erase(id);
    }
    for (auto* e : exporters) e->Release(Views(tensors));
  }
  return s;
}

void TensorHolder::ExportForThisHost(const std::vector<tensor::Tensor>& tensors,
                                     proto::RdtInfo* info,
                                     std::vector<transport::OneSidedTransport*>* exporters) {
  // An shm export registers nothing (a descriptor names the memory), so
  // every CPU object gets one; the owner decides who reads through it.
  for (const tensor::Tensor& t : tensors) {
    if (t.meta().device() != "cpu") return;
  }
  auto shm = OneSided("shm");
  if (!shm.ok()) return;
  auto exported = (*shm)->Export(Views(tensors));
  if (!exported.ok()) return;
  AddExport("shm", std::move(*exported), info);
  exporters->push_back(*shm);
}

void TensorHolder::Drop(const ObjectId& id) {
  std::optional<std::vector<tensor::Tensor>> tensors = deps_.store->Take(id);
  std::vector<transport::OneSidedTransport*> exporters;
  {
    MutexLock lock(transports_mu_);
    auto it = exported_.find(id);
    if (it != exported_.end()) {
      exporters = std::move(it->second);
      exported_.erase(it);
    }
  }
  if (!tensors) return;
  if (AnyUserTransport(exporters)) {
    // A user's transport runs user code (Python takes the GIL): never on the
    // io thread. The tensors stay alive until it has released them.
    auto release = [exporters, held = std::move(*tensors)] {
      for (auto* e : exporters) e->Release(Views(held));
    };
    // After Shutdown the queue drops it: a user's transport is not called
    // once the process is stopping.
    transfer_queue_.Post(std::move(release));
    return;
  }
  for (auto* e : exporters) e->Release(Views(*tensors));
  // `tensors` dies here, outside every lock: a DLPack deleter may run.
}

StatusOr<transport::OneSidedTransport*> TensorHolder::OneSided(const std::string& name) {
  MutexLock lock(transports_mu_);
  auto it = one_sided_.find(name);
  if (it != one_sided_.end()) return it->second.get();
  // Made under the lock so that two threads never make two (a UCX context
  // takes a few milliseconds, once per process).
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<transport::OneSidedTransport> t,
                         deps_.make_one_sided(name));
  transport::OneSidedTransport* raw = t.get();
  one_sided_[name] = std::move(t);
  return raw;
}

// --- serving ---------------------------------------------------------------

StatusOr<std::vector<tensor::Tensor>> TensorHolder::Held(const std::string& object_id) {
  FERRY_ASSIGN_OR_RETURN(ObjectId id, ObjectId::FromBinary(object_id));
  std::optional<std::vector<tensor::Tensor>> tensors = deps_.store->Get(id);
  if (!tensors) {
    return Status::DataLoss("this actor no longer holds the tensors of object " + id.Hex());
  }
  return std::move(*tensors);
}

void TensorHolder::ServeSend(std::string_view payload, ServeReplyFn reply) {
  proto::SendTensors req;
  if (!Parse(payload, &req, reply)) return;
  auto tensors = Held(req.object_id());
  if (!tensors.ok()) {
    reply(tensors.status(), nullptr);
    return;
  }
  auto group = groups_.Get(req.group());
  if (!group.ok()) {
    reply(group.status(), nullptr);
    return;
  }
  if (Status fault = InjectFault("transfer.send"); !fault.ok()) {
    groups_.Destroy(req.group(), fault);
    reply(fault, nullptr);
    return;
  }
  // The tensors stay alive until the send completes, even if the owner
  // frees the object meanwhile.
  auto keep = std::make_shared<std::vector<tensor::Tensor>>(std::move(*tensors));
  std::string name = req.group();
  uint64_t bytes = 0;
  for (const auto& t : *keep) bytes += t.nbytes();
  Clock::time_point start = Clock::now();
  ObjectId oid = ObjectId::FromBinary(req.object_id()).value();  // checked by Held
  (*group)->Send(req.dst_rank(), req.tag(), Views(*keep),
                 [this, reply = std::move(reply), keep, name, bytes, start, oid](Status s) {
                   LogTransfer(log_, oid, "gloo", "group " + name, bytes, start, true, s, "send");
                   if (s.ok()) {
                     proto::Empty empty;
                     reply(Status::Ok(), &empty);
                     return;
                   }
                   Status err = AsTransportError(s, name);
                   groups_.Destroy(name, err);
                   reply(err, nullptr);
                 });
}

void TensorHolder::ServeFetch(std::string_view payload, ServeReplyFn reply) {
  proto::FetchTensors req;
  if (!Parse(payload, &req, reply)) return;
  auto tensors = Held(req.object_id());
  if (!tensors.ok()) {
    reply(tensors.status(), nullptr);
    return;
  }
  if (Status fault = InjectFault("transfer.fetch"); !fault.ok()) {
    reply(fault, nullptr);
    return;
  }
  if (req.value_id().empty()) {
    // A small object: the bytes go back in the reply, copied now.
    proto::ObjectValueProto value = InlineTensors(*tensors);
    reply(Status::Ok(), &value);
    return;
  }
  if (!req.requester_host().empty() && req.requester_host() != HostId()) {
    // Another host cannot map this host's shared memory: the bytes travel in
    // the reply. The copy can be large: not on the io thread.
    auto keep = std::make_shared<std::vector<tensor::Tensor>>(std::move(*tensors));
    auto shared_reply = std::make_shared<ServeReplyFn>(std::move(reply));
    bool posted = transfer_queue_.Post([shared_reply, keep] {
      proto::ObjectValueProto value = InlineTensors(*keep);
      (*shared_reply)(Status::Ok(), &value);
    });
    if (!posted) (*shared_reply)(Status::Unavailable("ferry is shutting down"), nullptr);
    return;
  }
  auto value_id = ObjectId::FromBinary(req.value_id());
  if (!value_id.ok()) {
    reply(value_id.status(), nullptr);
    return;
  }
  // The copy into shared memory can be large: not on the io thread.
  auto keep = std::make_shared<std::vector<tensor::Tensor>>(std::move(*tensors));
  auto shared_reply = std::make_shared<ServeReplyFn>(std::move(reply));
  bool posted = transfer_queue_.Post([this, shared_reply, keep, vid = *value_id]() {
    std::vector<std::span<const uint8_t>> buffers;
    for (const auto& t : *keep) {
      buffers.emplace_back(static_cast<const uint8_t*>(t.data()), t.nbytes());
    }
    auto written = deps_.write_value(vid, buffers);
    if (!written.ok()) {
      (*shared_reply)(written.status(), nullptr);
      return;
    }
    (*shared_reply)(Status::Ok(), &*written);
  });
  if (!posted) (*shared_reply)(Status::Unavailable("ferry is shutting down"), nullptr);
}

void TensorHolder::ServeJoin(std::string_view payload, ServeReplyFn reply) {
  auto req = std::make_shared<proto::JoinGroup>();
  if (!Parse(payload, req.get(), reply)) return;
  auto shared_reply = std::make_shared<ServeReplyFn>(std::move(reply));
  bool posted = collective_queue_.Post([this, req, shared_reply] {
    Status s = deps_.join_group(*req, groups_);
    if (!s.ok()) {
      (*shared_reply)(s.WithContext("joining collective group '" + req->name() + "'"), nullptr);
      return;
    }
    proto::Empty empty;
    (*shared_reply)(Status::Ok(), &empty);
  });
  if (!posted) (*shared_reply)(Status::Unavailable("ferry is shutting down"), nullptr);
}

}  // namespace ferry::core::rdt
