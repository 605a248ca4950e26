// TensorHolder's receiver side: the tensors of a task's RDT argument
// (own, pulled, fetched inline or received on a group), pulls for get, and
// fetches into the object store.
#include <cstring>
#include <map>

#include "ferry/common/config.h"
#include "ferry/common/fault.h"
#include "ferry/common/host_id.h"
#include "ferry/core/rdt/tensor_holder.h"
#include "ferry/core/rdt/transfer_util.h"
#include "ferry/transport/registry.h"
#include "ferry/transport/transport_table.h"

namespace ferry::core::rdt {
namespace {

// Which export of `rdt` a receiver pulls with: shm when the producer is on
// this host, else one that reaches across hosts (nixl, or a user's
// transport).
StatusOr<const proto::TensorExport*> ChooseExport(const proto::RdtInfo& rdt) {
  const proto::TensorExport* remote = nullptr;
  for (const proto::TensorExport& e : rdt.exports()) {
    if (e.transport() == "shm" && transport::IsLocalEndpoint("shm", e.endpoint())) return &e;
    const transport::TransportInfo* info = transport::FindTransport(e.transport());
    if (remote == nullptr && info != nullptr && !info->same_host) remote = &e;
  }
  if (remote != nullptr) return remote;
  if (rdt.exports_size() == 0) {
    return Status::FailedPrecondition("the producer exported no pull descriptors for this '" +
                                      rdt.transport() + "' object");
  }
  return Status::FailedPrecondition(
      "the tensors were exported with '" + rdt.exports(0).transport() + "', which cannot reach " +
      "them from this host; use tensor_transport='nixl' (or 'auto') across hosts");
}

// True when this process can pull `rdt`'s tensors through the shm export of
// a producer on this host, without a message to it.
bool CanPullFromThisHost(const proto::RdtInfo& rdt) {
  auto chosen = ChooseExport(rdt);
  return chosen.ok() && (*chosen)->transport() == "shm";
}

// A transport this process's table lacks: a user's transport that was not
// registered here.
Status NotRegistered(const std::string& name) {
  return Status::FailedPrecondition(
      "tensor transport '" + name +
      "' is not registered in this process: register it before creating the actors that use it, "
      "in the process that creates them (or in this process)");
}

}  // namespace

void TensorHolder::Receive(const proto::TaskArg& arg, const ValuePtr& value, TensorsFn done) {
  const proto::RdtInfo& rdt = value->rdt();
  auto id = ObjectId::FromBinary(arg.object_id());
  if (!id.ok()) {
    done(Status::InvalidArgument("RDT argument without its object id"));
    return;
  }
  if (rdt.producer_address() == deps_.address) {
    // Passed back to its producer: the very same tensors, no copy.
    auto tensors = deps_.store->Get(*id);
    if (!tensors) {
      done(Status::DataLoss("the tensors of object " + id->Hex() + " were already freed"));
      return;
    }
    done(std::move(*tensors));
    return;
  }
  if (transport::FindTransport(rdt.transport()) == nullptr) {
    done(NotRegistered(rdt.transport()));
    return;
  }
  if (transport::IsOneSided(rdt.transport())) {
    PullArgument(*id, value, std::move(done));
    return;
  }
  if (!arg.has_tensor_recv()) {
    done(Status::FailedPrecondition(
        "an RDT object (transport '" + rdt.transport() +
        "') reached an actor that is not its "
        "producer without a transfer: only the process that owns the ObjectRef can pass it on"));
    return;
  }
  if (Status fault = InjectFault("transfer.recv"); !fault.ok()) {
    done(Status::Aborted(fault.message()));
    return;
  }
  if (!arg.tensor_recv().inline_fetch()) {
    ReceiveOnGroup(*id, arg.tensor_recv(), value, std::move(done));
  } else if (CanPullFromThisHost(rdt)) {
    // Same host (a small object, or the owner saw the group's two ranks
    // share it): read the producer's memory through its shm export, without
    // waking it. A failure is the group's, as one on its wire would be.
    PullArgument(*id, value,
                 [this, group = arg.tensor_recv().group(),
                  done = std::move(done)](StatusOr<std::vector<tensor::Tensor>> tensors) {
                   if (!tensors.ok()) {
                     Status err = AsTransportError(tensors.status(), group);
                     groups_.Destroy(group, err);
                     done(err);
                     return;
                   }
                   done(std::move(tensors));
                 });
  } else {
    FetchInline(*id, value, std::move(done));
  }
}

void TensorHolder::ReceiveOnGroup(const ObjectId& id, const proto::TensorRecv& recv,
                                  const ValuePtr& value, TensorsFn done) {
  const proto::RdtInfo& rdt = value->rdt();
  auto group = groups_.Get(recv.group());
  if (!group.ok()) {
    done(group.status());
    return;
  }
  auto tensors = std::make_shared<std::vector<tensor::Tensor>>();
  bool all_pooled = true;
  const Clock::time_point setup_start = Clock::now();
  for (const proto::TensorMetaProto& meta : rdt.tensors()) {
    if (Status s = transport::CheckTensorDevice(rdt.transport(), meta.device()); !s.ok()) {
      done(s);
      return;
    }
    bool pooled = false;
    auto t = tensor::Tensor::AllocateCpu(meta, *deps_.allocator, &pooled);
    all_pooled = all_pooled && pooled;
    if (!t.ok()) {
      done(t.status());
      return;
    }
    tensors->push_back(std::move(t).value());
  }
  std::string name = recv.group();
  auto record = std::make_shared<TransferRecord>();
  record->object_id = id;
  record->transport = rdt.transport();
  record->peer = rdt.producer_address();
  record->bytes = TotalBytes(rdt);
  record->pooled = all_pooled;
  record->setup_micros = MicrosSince(setup_start);
  Clock::time_point start = Clock::now();
  (*group)->Recv(recv.src_rank(), recv.tag(), Views(*tensors),
                 [this, tensors, done = std::move(done), name, record, start](Status s) {
                   record->micros = MicrosSince(start);
                   if (!s.ok()) {
                     Status err = AsTransportError(s, name);
                     record->error = err.ToString();
                     log_.Add(std::move(*record));
                     groups_.Destroy(name, err);
                     done(err);
                     return;
                   }
                   log_.Add(std::move(*record));
                   done(std::move(*tensors));
                 });
}

void TensorHolder::FetchInline(const ObjectId& id, const ValuePtr& value, TensorsFn done) {
  auto req = std::make_shared<proto::FetchTensors>();
  req->set_object_id(id.Binary());
  Clock::time_point start = Clock::now();
  deps_.peers->Call(
      value->rdt().producer_address(), proto::FETCH_TENSORS, req,
      [this, id, value, done = std::move(done), start](Status s, std::string_view payload) {
        const proto::RdtInfo& rdt = value->rdt();
        if (!s.ok()) {
          if (s.code() == StatusCode::kUnavailable) {
            s = Status::Unavailable("the actor holding the tensors died: " + s.message());
          }
          LogTransfer(log_, id, "inline", rdt.producer_address(), TotalBytes(rdt), start, false, s);
          done(s);
          return;
        }
        bool all_pooled = true;
        proto::ObjectValueProto bytes;
        if (!bytes.ParseFromArray(payload.data(), static_cast<int>(payload.size())) ||
            bytes.buffer_sizes_size() != rdt.tensors_size()) {
          done(Status::Internal("malformed inline tensors"));
          return;
        }
        std::vector<tensor::Tensor> tensors;
        for (int i = 0; i < bytes.buffer_sizes_size(); ++i) {
          const proto::TensorMetaProto& meta = rdt.tensors(i);
          uint64_t off = bytes.buffer_offsets(i), n = bytes.buffer_sizes(i);
          if (n != meta.nbytes() || off + n > bytes.inline_data().size()) {
            done(Status::Internal("inline tensor sizes do not match their metadata"));
            return;
          }
          bool pooled = false;
          auto t = tensor::Tensor::AllocateCpu(meta, *deps_.allocator, &pooled);
          if (!t.ok()) {
            done(t.status());
            return;
          }
          all_pooled = all_pooled && pooled;
          if (n > 0) std::memcpy(t->data(), bytes.inline_data().data() + off, n);
          tensors.push_back(std::move(t).value());
        }
        LogTransfer(log_, id, "inline", rdt.producer_address(), TotalBytes(rdt), start, all_pooled,
                    Status::Ok());
        done(std::move(tensors));
      });
}

void TensorHolder::PullArgument(const ObjectId& id, const ValuePtr& value, TensorsFn done) {
  const proto::RdtInfo& rdt = value->rdt();
  auto shared_done = std::make_shared<TensorsFn>(std::move(done));
  auto pull = [this, id, value, shared_done] {
    Deadline deadline = Deadline::After(Config::Get().transfer_timeout);
    auto pulled = Pull(std::span<const ObjectId>(&id, 1), std::span<const ValuePtr>(&value, 1),
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
  // else runs on the transfer thread, never on the io thread.
  auto chosen = ChooseExport(rdt);
  if (chosen.ok() && (*chosen)->transport() == "shm" &&
      static_cast<int64_t>(TotalBytes(rdt)) <= Config::Get().inline_tensor_bytes) {
    pull();
    return;
  }
  if (!transfer_queue_.Post(std::move(pull))) {
    (*shared_done)(Status::Unavailable("ferry is shutting down"));
  }
}

StatusOr<std::vector<std::vector<tensor::Tensor>>> TensorHolder::Pull(
    std::span<const ObjectId> ids, std::span<const ValuePtr> values, Deadline deadline) {
  if (ids.size() != values.size()) return Status::InvalidArgument("Pull: ids and values differ");
  std::vector<std::vector<tensor::Tensor>> out(values.size());
  // One batch per transport, so every item of a batch moves concurrently.
  struct Batch {
    transport::OneSidedTransport* transport = nullptr;
    std::vector<transport::PullItem> items;
    std::vector<size_t> objects;  // indexes into `values`, one per object in the batch
  };
  std::map<std::string, Batch> batches;
  std::vector<bool> pooled(values.size(), true);
  const Clock::time_point setup_start = Clock::now();
  for (size_t i = 0; i < values.size(); ++i) {
    const proto::ObjectValueProto& value = *values[i];
    if (!value.has_rdt()) return Status::InvalidArgument("Pull: not an RDT object");
    const proto::RdtInfo& rdt = value.rdt();
    if (rdt.producer_address() == deps_.address) {
      // Ours: the very same tensors.
      auto held = deps_.store->Get(ids[i]);
      if (!held)
        return Status::DataLoss("the tensors of object " + ids[i].Hex() + " were already freed");
      out[i] = std::move(*held);
      continue;
    }
    if (transport::FindTransport(rdt.transport()) == nullptr) return NotRegistered(rdt.transport());
    // A two-sided object can be pulled only through the shm export its
    // producer adds to small objects.
    if (!transport::IsOneSided(rdt.transport()) && !CanPullFromThisHost(rdt)) {
      return Status::FailedPrecondition("object " + ids[i].Hex() +
                                        " moves with the two-sided "
                                        "transport '" +
                                        rdt.transport() + "': it cannot be pulled");
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
      FERRY_ASSIGN_OR_RETURN(tensor::Tensor t, tensor::Tensor::AllocateCpu(
                                                   rdt.tensors(k), *deps_.allocator, &from_pool));
      pooled[i] = pooled[i] && from_pool;
      batch.items.push_back({exp->endpoint(), exp->descriptors(k), {t.data(), t.nbytes()}});
      out[i].push_back(std::move(t));
    }
  }
  const int64_t setup_micros = MicrosSince(setup_start);  // every destination, before any pull
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
      const proto::RdtInfo& rdt = values[i]->rdt();
      std::string reason;
      if (!transport::IsOneSided(rdt.transport())) {
        reason = "the '" + rdt.transport() + "' group's two ranks share this host: shared memory";
      } else if (rdt.exports_size() > 1) {
        reason = name == "shm" ? "the producer is on this host: shared memory"
                               : "the producer is on another host: the network (" + name + ")";
      }
      LogTransfer(log_, ids[i], name, rdt.producer_address(), TotalBytes(rdt), start, pooled[i], s,
                  "recv", std::move(reason), setup_micros);
    }
    FERRY_RETURN_IF_ERROR(s);
  }
  return out;
}

StatusOr<std::shared_ptr<object::ReadableValue>> TensorHolder::FetchToObjectStore(
    const ObjectId& id, const proto::ObjectValueProto& value, Deadline deadline) {
  if (!value.has_rdt()) return Status::InvalidArgument("not an RDT object");
  const std::string& producer = value.rdt().producer_address();
  ObjectId copy_id = ObjectId::Random();
  proto::FetchTensors req;
  req.set_object_id(id.Binary());
  req.set_value_id(copy_id.Binary());
  req.set_requester_host(HostId());
  Clock::time_point start = Clock::now();
  auto payload = deps_.peers->CallSync(producer, proto::FETCH_TENSORS, req, deadline);
  // Mapped, not copied, on this side: no receive buffer (pooled = false).
  LogTransfer(log_, id, "object_store", producer, TotalBytes(value.rdt()), start, false,
              payload.status());
  if (!payload.ok()) {
    if (payload.status().code() == StatusCode::kUnavailable) {
      return Status::Unavailable("the actor holding the tensors died: " +
                                 payload.status().message());
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
    deps_.peers->Notify(producer, proto::FREE_OBJECTS, free);
  }
  return readable;
}

}  // namespace ferry::core::rdt
