// CoreWorker's collective groups: creating and destroying them (the
// creator's side) and joining one (a member's side). See DESIGN.md
// "Direct tensor transport" and docs/rdt.md "Collective groups".
#include <condition_variable>
#include <mutex>

#include "ferry/collective/head_kv_store.h"
#include "ferry/common/config.h"
#include "ferry/core/core_worker.h"
#include "ferry/rpc/parse.h"

namespace ferry::core {

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
