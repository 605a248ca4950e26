#include "ferry/core/actor_locator.h"

#include "ferry/common/config.h"
#include "ferry/common/host_id.h"
#include "ferry/common/logging.h"
#include "ferry/core/error_value.h"

namespace ferry::core {

StatusOr<proto::ActorInfo> ActorLocator::GetActorInfo(const ActorId& actor, bool wait_until_settled,
                                                      Deadline deadline) {
  proto::GetActorInfo req;
  req.set_actor_id(actor.Binary());
  req.set_wait_until_settled(wait_until_settled);
  return GetActorInfo(req, deadline);
}

StatusOr<proto::ActorInfo> ActorLocator::GetActorInfo(const proto::GetActorInfo& req,
                                                      Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(ChannelPtr head, head_());
  FERRY_ASSIGN_OR_RETURN(std::string payload, head->CallSync(proto::GET_ACTOR_INFO, req, deadline));
  proto::ActorInfo info;
  if (!info.ParseFromString(payload)) return Status::Internal("malformed ActorInfo");
  return info;
}

StatusOr<std::string> ActorLocator::Address(const ActorId& actor, bool wait_until_started,
                                            Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(proto::ActorInfo info, GetActorInfo(actor, wait_until_started, deadline));
  if (info.state() != proto::ActorInfo::ALIVE) {
    return Status::Unavailable("actor " + actor.Hex() +
                               " is dead: " + info.death_cause().message());
  }
  return info.address();
}

std::string ActorLocator::LastAddress(const ActorId& actor) {
  MutexLock lock(mu_);
  auto it = addresses_.find(actor);
  return it == addresses_.end() ? std::string() : it->second;
}

StatusOr<ActorConnection> ActorLocator::ConnectToActor(const ActorId& id) {
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
    addresses_[id] = info->address();
  }
  // A dedicated channel: its close is the death of this process of the actor.
  ActorConnection connection;
  FERRY_ASSIGN_OR_RETURN(connection.channel,
                         dial_(info->address(),
                               Deadline::After(Config::Get().rpc_connect_timeout)));
  connection.another_host = !info->host().empty() && info->host() != HostId();
  connection.incarnation = info->num_restarts();
  connection.may_restart = info->max_restarts() != 0;
  return connection;
}

ActorFate ActorLocator::AwaitFate(const ActorId& id, int incarnation) {
  // The Head hears of a worker's exit about when its connections close;
  // two seconds bound the wait when it does not (a host cut off).
  proto::GetActorInfo req;
  req.set_actor_id(id.Binary());
  req.set_wait_for_change(true);
  req.set_known_restarts(incarnation);
  auto info = GetActorInfo(req, Deadline::After(std::chrono::seconds(2)));
  ActorFate fate;
  if (!info.ok()) return fate;
  if (info->state() == proto::ActorInfo::DEAD) {
    fate.cause = FromProto(info->death_cause());
  } else if (info->num_restarts() > incarnation) {
    fate.restarting = true;
    fate.cause = FromProto(info->death_cause());
  }
  return fate;
}

}  // namespace ferry::core
