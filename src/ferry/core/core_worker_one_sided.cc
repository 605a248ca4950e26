// CoreWorker's one-sided transports (nixl, shm, auto): exporting a stored
// object's tensors, releasing the exports when it is freed, and pulling
// tensors for task arguments and get. Small CPU objects of the two-sided
// transports get an shm export too, so that a receiver on the same host
// reads them without a round trip to the producer. See docs/one-sided.md.
#include <map>

#include "ferry/common/config.h"
#include "ferry/common/fault.h"
#include "ferry/core/core_worker.h"
#include "ferry/core/rdt_util.h"
#include "ferry/transport/registry.h"

namespace ferry::core {
namespace {

using rdt::LogTransfer;
using rdt::TotalBytes;
using rdt::Views;

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

// Records what the one-sided transport `name` exported for an object in its
// RdtInfo.
void AddExport(const std::string& name, transport::ExportedBuffers exported, proto::RdtInfo* info) {
  proto::TensorExport* out = info->add_exports();
  out->set_transport(name);
  out->set_endpoint(std::move(exported.endpoint));
  for (std::string& d : exported.descriptors) out->add_descriptors(std::move(d));
}

}  // namespace

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
      AddExport(name, std::move(*exported), info);
      exporters.push_back(*t);
    }
    if (exporters.empty()) {
      return Status::Unimplemented("no one-sided transport for '" + info->transport() +
                                   "' is available in this build");
    }
  } else if (IsTwoSidedTransport(info->transport())) {
    ExportSmallForThisHost(tensors, info, &exporters);
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

void CoreWorker::ExportSmallForThisHost(const std::vector<tensor::Tensor>& tensors,
                                        proto::RdtInfo* info,
                                        std::vector<transport::OneSidedTransport*>* exporters) {
  uint64_t total = 0;
  for (const tensor::Tensor& t : tensors) {
    if (t.meta().device() != "cpu") return;
    total += t.nbytes();
  }
  if (static_cast<int64_t>(total) > Config::Get().inline_tensor_bytes) return;
  auto shm = OneSided("shm");
  if (!shm.ok()) return;
  auto exported = (*shm)->Export(Views(tensors));
  if (!exported.ok()) return;
  AddExport("shm", std::move(*exported), info);
  exporters->push_back(*shm);
}

bool CoreWorker::CanPullFromThisHost(const proto::RdtInfo& rdt) {
  auto chosen = ChooseExport(rdt);
  return chosen.ok() && (*chosen)->transport() == "shm";
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

void CoreWorker::PullArgTensors(const ObjectId& id, const ValuePtr& value,
                                std::function<void(StatusOr<std::vector<tensor::Tensor>>)> done) {
  const proto::RdtInfo& rdt = value->rdt();
  auto shared_done = std::make_shared<std::function<void(StatusOr<std::vector<tensor::Tensor>>)>>(
      std::move(done));
  auto pull = [this, id, value, shared_done] {
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
    // A two-sided object can be pulled only through the shm export its
    // producer adds to small objects (ExportSmallForThisHost).
    if (!IsOneSidedTransport(rdt.transport()) && !CanPullFromThisHost(rdt)) {
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

}  // namespace ferry::core
