#include "ferry/core/rdt/transfer_owner.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"
#include "ferry/core/error_value.h"
#include "ferry/core/rdt/transfer_util.h"
#include "ferry/transport/transport_table.h"

namespace ferry::core::rdt {
namespace {

uint64_t RandomTagPrefix() {
  uint64_t r;
  FillRandom(reinterpret_cast<uint8_t*>(&r), sizeof(r));
  return r << 32;
}

// The producer added an shm export (a CPU object of a built-in two-sided
// transport, TensorHolder::Store).
bool HasShmExport(const proto::RdtInfo& rdt) {
  for (const proto::TensorExport& e : rdt.exports()) {
    if (e.transport() == "shm") return true;
  }
  return false;
}

}  // namespace

StatusOr<bool> SameHostPathEnabled() {
  const std::string path = EnvString("FERRY_GLOO_SAME_HOST_PATH", "shm");
  if (path != "shm" && path != "tcp") {
    return Status::InvalidArgument("FERRY_GLOO_SAME_HOST_PATH is '" + path +
                                   "'; valid values: shm, tcp");
  }
  return path == "shm";
}

TransferOwner::TransferOwner(WorkerId self, object::MemoryStore& store, ActorDirectory& actors,
                             PeerMessenger& peers)
    : self_(std::move(self)),
      store_(store),
      actors_(actors),
      peers_(peers),
      tag_prefix_(RandomTagPrefix()) {}

void TransferOwner::Track(std::span<const ObjectId> ids, const ActorId& producer,
                          const std::string& transport) {
  MutexLock lock(mu_);
  for (const ObjectId& id : ids) objects_[id] = RdtObject{producer, transport};
}

void TransferOwner::Forget(const ObjectId& id) {
  MutexLock lock(mu_);
  objects_.erase(id);
}

size_t TransferOwner::NumTracked() {
  MutexLock lock(mu_);
  return objects_.size();
}

std::vector<ObjectId> TransferOwner::NoteUses(std::span<const ObjectRef> deps,
                                              const ActorId& target,
                                              std::vector<std::string>* warnings) {
  std::vector<ObjectId> waiting;
  MutexLock lock(mu_);
  for (const ObjectRef& ref : deps) {
    if (ref.owner_id != self_) continue;
    auto it = objects_.find(ref.id);
    if (it == objects_.end()) continue;
    if (!store_.GetIfReady(ref.id)) waiting.push_back(ref.id);
    RdtObject& obj = it->second;
    (target == obj.producer ? obj.sent_to_producer : obj.sent_to_other) = true;
    if (obj.sent_to_producer && obj.sent_to_other && !obj.warned && warnings != nullptr) {
      obj.warned = true;
      warnings->push_back(
          "RDT ObjectRef(" + ref.id.Hex() +
          ") is being passed back to the actor that created it "
          "and to another actor. Note that RDT objects are mutable: if the tensor is modified in "
          "place, the producer's copy changes too, and later transfers to other actors send the "
          "modified version instead of the original.");
    }
  }
  return waiting;
}

void TransferOwner::FillArgument(const ObjectId& id, const ValuePtr& value, const ActorId& target,
                                 proto::TaskArg* arg) {
  if (!value->has_rdt() || !ValueStatus(*value).ok()) {
    *arg->mutable_value() = *value;
    return;
  }
  Status s = ArrangeTransfer(id, value, target, arg);
  if (!s.ok()) *arg->mutable_value() = MakeErrorValue(s);
}

Status TransferOwner::ArrangeTransfer(const ObjectId& id, const ValuePtr& value,
                                      const ActorId& target, proto::TaskArg* arg) {
  const proto::RdtInfo& rdt = value->rdt();
  *arg->mutable_value() = *value;
  if (rdt.producer_actor_id() == target.Binary()) return Status::Ok();  // same actor: no copy
  FERRY_RETURN_IF_ERROR(transport::CheckTensorTransport(rdt.transport()));
  if (!rdt.producer_actor_id().empty()) {
    FERRY_ASSIGN_OR_RETURN(ActorId producer, ActorId::FromBinary(rdt.producer_actor_id()));
    if (Status cause; actors_.IsDead(producer, &cause)) {
      return Status::Unavailable("the actor holding the tensors of this argument is dead: " +
                                 cause.message());
    }
  }
  // One-sided: the receiver pulls with the exports in the value itself.
  if (transport::IsOneSided(rdt.transport())) return Status::Ok();
  FERRY_ASSIGN_OR_RETURN(ActorId producer, ActorId::FromBinary(rdt.producer_actor_id()));
  std::optional<Route> route = FindRoute(rdt.transport(), producer, target);
  if (!route) {
    std::string lost;
    {
      MutexLock lock(mu_);
      for (const std::string& name : lost_groups_)
        lost += (lost.empty() ? "'" : ", '") + name + "'";
    }
    return Status::FailedPrecondition(
        "the producer and the receiver of an RDT object (transport '" + rdt.transport() +
        "') share no collective group created by this process" +
        (lost.empty() ? std::string()
                      : " (collective group " + lost + " was destroyed after a system error)") +
        "; call create_collective_group([producer, receiver, ...], backend='" + rdt.transport() +
        "')");
  }
  proto::TensorRecv* recv = arg->mutable_tensor_recv();
  recv->set_group(route->group);
  recv->set_src_rank(route->src_rank);
  if (!transport::IsCustom(rdt.transport()) &&
      (static_cast<int64_t>(TotalBytes(rdt)) <= Config::Get().inline_tensor_bytes ||
       (route->same_host && HasShmExport(rdt)))) {
    // Small: the receiver fetches the bytes itself (one round trip); a
    // collective transfer's handshakes would cost more than the bytes. Two
    // ranks on one host: the receiver reads the producer's memory once. A
    // user's transport carries every object: its user chose it.
    recv->set_inline_fetch(true);
    return Status::Ok();
  }
  recv->set_tag(route->tag);
  auto send = std::make_shared<proto::SendTensors>();
  send->set_object_id(id.Binary());
  send->set_group(route->group);
  send->set_dst_rank(route->dst_rank);
  send->set_tag(route->tag);
  // A failed send destroys the group: the receiver's posted receive fails
  // at once with the send's error, and the task reports it.
  peers_.Call(rdt.producer_address(), proto::SEND_TENSORS, send,
              [this, group = route->group, producer](Status s, std::string_view) {
                if (s.ok()) return;
                FERRY_LOG(WARNING)
                    << "RDT send in collective group '" << group << "' failed: " << s;
                if (s.code() == StatusCode::kUnavailable) {
                  s = Status::Unavailable("actor " + producer.Hex() +
                                          ", the sender, is gone: " + s.message());
                }
                Lose(group, s.WithContext("the sender's transfer failed"));
              });
  return Status::Ok();
}

std::optional<TransferOwner::Route> TransferOwner::FindRoute(const std::string& transport,
                                                             const ActorId& producer,
                                                             const ActorId& target) {
  MutexLock lock(mu_);
  for (const auto& [name, group] : groups_) {
    if (!transport::BackendServes(group.backend, transport)) continue;
    Route route;
    for (size_t r = 0; r < group.members.size(); ++r) {
      if (group.members[r] == producer) route.src_rank = static_cast<int>(r);
      if (group.members[r] == target) route.dst_rank = static_cast<int>(r);
    }
    if (route.src_rank < 0 || route.dst_rank < 0) continue;
    route.same_host = !group.hosts.empty() && !group.hosts[route.src_rank].empty() &&
                      group.hosts[route.src_rank] == group.hosts[route.dst_rank];
    route.group = name;
    route.tag = tag_prefix_ | (next_tag_++ & 0xffffffffull);
    return route;
  }
  return std::nullopt;
}

Status TransferOwner::CreateGroup(const std::string& name, const std::string& backend,
                                  const std::vector<ActorId>& actors) {
  FERRY_RETURN_IF_ERROR(transport::CheckCollectiveBackend(backend));
  if (actors.empty()) return Status::InvalidArgument("a collective group needs at least one actor");
  for (size_t i = 0; i < actors.size(); ++i) {
    for (size_t j = i + 1; j < actors.size(); ++j) {
      if (actors[i] == actors[j])
        return Status::InvalidArgument("an actor appears twice in the group");
    }
  }
  {
    MutexLock lock(mu_);
    if (groups_.count(name) != 0) {
      return Status::AlreadyExists("collective group '" + name +
                                   "' already exists; destroy it first");
    }
    lost_groups_.erase(name);
  }
  std::string prefix = "ferry/groups/" + name + "/" + ObjectId::Random().Hex() + "/";
  Deadline deadline = Deadline::After(Config::Get().transfer_timeout +
                                      Config::Get().worker_start_timeout);
  FERRY_ASSIGN_OR_RETURN(bool same_host_path, SameHostPathEnabled());
  std::vector<std::string> addresses, hosts;
  for (const ActorId& actor : actors) {
    FERRY_ASSIGN_OR_RETURN(std::string address, actors_.Address(actor, true, deadline));
    addresses.push_back(std::move(address));
    if (same_host_path) {
      FERRY_ASSIGN_OR_RETURN(std::string host, actors_.Host(actor, deadline));
      hosts.push_back(std::move(host));
    }
  }
  struct Join {
    std::mutex mu;
    std::condition_variable cv;
    size_t done = 0;
    Status first_error;
  };
  auto join = std::make_shared<Join>();
  for (size_t rank = 0; rank < actors.size(); ++rank) {
    auto req = std::make_shared<proto::JoinGroup>();
    req->set_name(name);
    req->set_backend(backend);
    req->set_rank(static_cast<int>(rank));
    req->set_size(static_cast<int>(actors.size()));
    req->set_kv_prefix(prefix);
    req->set_timeout_ms(Config::Get().transfer_timeout.count());
    peers_.Call(addresses[rank], proto::JOIN_GROUP, req, [join](Status s, std::string_view) {
      std::lock_guard<std::mutex> lock(join->mu);
      if (!s.ok() && join->first_error.ok()) join->first_error = s;
      join->done++;
      join->cv.notify_all();
    });
  }
  Status result;
  {
    std::unique_lock<std::mutex> lock(join->mu);
    if (!join->cv.wait_until(lock, deadline.time_point(),
                             [&] { return join->done == actors.size(); })) {
      result = Status::DeadlineExceeded("creating collective group '" + name + "' timed out");
    } else {
      result = join->first_error;
    }
  }
  if (!result.ok()) {
    proto::LeaveGroup leave;
    leave.set_name(name);
    for (const std::string& address : addresses) peers_.Notify(address, proto::LEAVE_GROUP, leave);
    return result;
  }
  MutexLock lock(mu_);
  groups_[name] = CollectiveGroup{name, backend, actors, std::move(addresses), std::move(hosts)};
  return Status::Ok();
}

Status TransferOwner::DestroyGroup(const std::string& name) {
  CollectiveGroup group;
  {
    MutexLock lock(mu_);
    auto it = groups_.find(name);
    if (it == groups_.end()) {
      if (lost_groups_.erase(name) != 0) return Status::Ok();  // a member's death destroyed it
      return Status::NotFound("no collective group named '" + name + "' was created here");
    }
    group = std::move(it->second);
    groups_.erase(it);
  }
  proto::LeaveGroup leave;
  leave.set_name(name);
  for (const ActorId& actor : group.members) {
    auto address = actors_.Address(actor, false, Deadline::After(std::chrono::seconds(5)));
    if (!address.ok()) continue;  // dead: it left every group with its process
    (void)peers_.CallSync(*address, proto::LEAVE_GROUP, leave,
                          Deadline::After(std::chrono::seconds(10)));
  }
  return Status::Ok();
}

Status TransferOwner::CheckSubmission(const ActorId& producer, const std::string& transport) {
  if (!transport::IsTwoSided(transport)) return Status::Ok();
  MutexLock lock(mu_);
  for (const auto& [name, group] : groups_) {
    if (transport::BackendServes(group.backend, transport) &&
        std::find(group.members.begin(), group.members.end(), producer) != group.members.end()) {
      return Status::Ok();
    }
  }
  return Status::InvalidArgument(
      "this actor is in no collective group of backend '" + transport +
      "' created by this process, so the tensors this call returns could never move: call "
      "create_collective_group([actors...], backend='" +
      transport +
      "') (ferry.experimental.collective) before calling its methods with tensor_transport='" +
      transport + "'");
}

void TransferOwner::OnActorDied(const ActorId& actor, const Status& cause) {
  std::vector<std::string> doomed;
  {
    MutexLock lock(mu_);
    for (const auto& [name, group] : groups_) {
      if (std::find(group.members.begin(), group.members.end(), actor) != group.members.end()) {
        doomed.push_back(name);
      }
    }
  }
  for (const std::string& name : doomed) Lose(name, cause);
}

void TransferOwner::OnProducerRestarted(const ActorId& actor, const Status& cause) {
  std::vector<ObjectId> produced;
  {
    MutexLock lock(mu_);
    for (const auto& [id, object] : objects_) {
      if (object.producer == actor) produced.push_back(id);
    }
  }
  for (const ObjectId& id : produced) {
    object::MemoryStore::Value value = store_.GetIfReady(id);
    if (!value || !value->has_rdt() || !ValueStatus(*value).ok()) continue;
    store_.Replace(id, std::make_shared<const proto::ObjectValueProto>(MakeErrorValue(
                           Status::DataLoss("the RDT object " + id.Hex() +
                                            " was lost: its tensors were in the process of an "
                                            "actor that has since restarted (" +
                                            cause.message() + ")"))));
  }
}

void TransferOwner::OnTransferFailed(std::span<const std::string> groups, const Status& cause) {
  for (const std::string& name : groups) Lose(name, cause);
}

TaskTransfers TaskTransfers::Of(const proto::TaskSpec& spec) {
  TaskTransfers out;
  if (auto receiver = ActorId::FromBinary(spec.actor_id()); receiver.ok()) out.receiver = *receiver;
  for (const proto::TaskArg& arg : spec.args()) {
    if (!arg.has_tensor_recv()) continue;
    // An inline fetch is the group's transfer too (its failure destroys it).
    out.groups.push_back(arg.tensor_recv().group());
    auto sender = ActorId::FromBinary(arg.value().rdt().producer_actor_id());
    if (sender.ok()) out.senders.push_back(*sender);
  }
  return out;
}

bool TransferOwner::IsTransferFailure(const Status& status) {
  switch (status.code()) {
    case StatusCode::kAborted:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kUnavailable:
    case StatusCode::kCancelled: return true;
    default: return false;
  }
}

Status TransferOwner::ExplainFailure(const TaskTransfers& transfers, const Status& status,
                                     Clock::duration wait) {
  OnTransferFailed(transfers.groups, status);
  // The transport often sees a dead sender's connection close before the
  // Head has reaped its process: give the death a moment to become known.
  const Deadline deadline = Deadline::After(wait);
  static constexpr auto kPoll = std::chrono::milliseconds(50);
  auto is_dead = [this](const ActorId& actor) {
    if (Status cause; actors_.IsDead(actor, &cause)) return true;
    auto address = actors_.Address(actor, false, Deadline::After(kPoll * 4));
    return !address.ok() && address.status().code() == StatusCode::kUnavailable;
  };
  while (true) {
    if (!transfers.receiver.IsNil() && is_dead(transfers.receiver)) return Status::Ok();
    for (const ActorId& sender : transfers.senders) {
      Status cause;
      if (actors_.IsDead(sender, &cause)) {
        return Status::Unavailable("actor " + sender.Hex() +
                                   ", the sender of a tensor argument, died: " + cause.message());
      }
      auto address = actors_.Address(sender, false, Deadline::After(kPoll * 4));
      if (!address.ok() && address.status().code() == StatusCode::kUnavailable) {
        return address.status();  // "actor <id> is dead: <cause>"
      }
    }
    if (deadline.Expired()) return Status::Ok();
    std::this_thread::sleep_for(kPoll);  // a bounded wait on a failure path only
  }
}

void TransferOwner::Lose(const std::string& name, const Status& cause) {
  CollectiveGroup group;
  {
    MutexLock lock(mu_);
    auto it = groups_.find(name);
    if (it == groups_.end()) return;  // lost already, or destroyed by the user
    group = std::move(it->second);
    groups_.erase(it);
    lost_groups_.insert(name);
  }
  proto::LeaveGroup leave;
  leave.set_name(name);
  *leave.mutable_cause() = ToProto(
      cause.WithContext("collective group '" + name + "' was destroyed after a system error"));
  for (size_t i = 0; i < group.members.size() && i < group.addresses.size(); ++i) {
    Status dead;
    if (actors_.IsDead(group.members[i], &dead)) continue;  // it left with its process
    peers_.Notify(group.addresses[i], proto::LEAVE_GROUP, leave);
  }
}

std::vector<CollectiveGroup> TransferOwner::Groups() {
  MutexLock lock(mu_);
  std::vector<CollectiveGroup> out;
  for (const auto& [name, g] : groups_) out.push_back(g);
  return out;
}

}  // namespace ferry::core::rdt
