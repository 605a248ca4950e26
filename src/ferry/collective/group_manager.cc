#include "ferry/collective/group_manager.h"

#include "ferry/common/clock.h"
#include "ferry/common/config.h"
#include "ferry/transport/registry.h"

namespace ferry::collective {

Status GroupManager::Join(const proto::JoinGroup& req, transport::RendezvousStore& store) {
  {
    MutexLock lock(mu_);
    auto it = groups_.find(req.name());
    if (it != groups_.end() && it->second.destroyed.ok()) {
      return Status::AlreadyExists("this actor is already in collective group '" + req.name() +
                                   "'; destroy it first");
    }
  }
  transport::TransportOptions options;
  options.prefix = req.kv_prefix();
  options.rank = req.rank();
  options.size = req.size();
  if (req.timeout_ms() > 0) {
    options.connect_timeout = ClampedMillis(req.timeout_ms());
    options.transfer_timeout = ClampedMillis(req.timeout_ms());
  }
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<transport::TwoSidedTransport> t,
                         transport::CreateTwoSidedTransport(req.backend(), store, options));
  Adopt(req.name(), std::shared_ptr<transport::TwoSidedTransport>(std::move(t)), req);
  return Status::Ok();
}

void GroupManager::Adopt(const std::string& name,
                         std::shared_ptr<transport::TwoSidedTransport> transport,
                         proto::JoinGroup join) {
  std::shared_ptr<transport::TwoSidedTransport> old;  // a destroyed predecessor
  {
    MutexLock lock(mu_);
    Group& g = groups_[name];
    old = std::move(g.transport);
    join.set_name(name);
    join.clear_kv_prefix();
    g = Group{std::move(transport), Status(), std::move(join)};
  }
  // `old` is released here, outside the lock.
}

void GroupManager::Leave(const std::string& name) {
  std::shared_ptr<transport::TwoSidedTransport> t;
  {
    MutexLock lock(mu_);
    auto it = groups_.find(name);
    if (it == groups_.end()) return;
    t = std::move(it->second.transport);
    groups_.erase(it);
  }
  if (t) t->Abort(Status::Cancelled("collective group '" + name + "' was destroyed"));
}

StatusOr<std::shared_ptr<transport::TwoSidedTransport>> GroupManager::Get(const std::string& name) {
  MutexLock lock(mu_);
  auto it = groups_.find(name);
  if (it == groups_.end()) {
    return Status::FailedPrecondition("this actor is not in collective group '" + name +
                                      "'; create it with create_collective_group()");
  }
  if (!it->second.destroyed.ok()) {
    // The system error's own code: a transfer that starts after the group
    // was destroyed fails as the one that destroyed it did.
    return Status(it->second.destroyed.code(),
                  "collective group '" + name + "' was destroyed after a system error (" +
                      it->second.destroyed.message() +
                      "); re-create it with create_collective_group()");
  }
  return it->second.transport;
}

void GroupManager::Destroy(const std::string& name, const Status& cause) {
  std::shared_ptr<transport::TwoSidedTransport> t;
  {
    MutexLock lock(mu_);
    auto it = groups_.find(name);
    if (it == groups_.end() || !it->second.destroyed.ok()) return;
    it->second.destroyed = cause.ok() ? Status::Aborted("destroyed") : cause;
    // Keep the transport object: Destroy runs inside transfer callbacks, and
    // a transport must not be deleted from its own callback. It is released
    // by Leave, a re-Join or Clear.
    t = it->second.transport;
  }
  if (t) t->Abort(cause);
}

std::vector<std::string> GroupManager::Names() {
  MutexLock lock(mu_);
  std::vector<std::string> names;
  for (auto& [name, g] : groups_) {
    if (g.destroyed.ok()) names.push_back(name);
  }
  return names;
}

std::vector<GroupManager::Membership> GroupManager::List() {
  MutexLock lock(mu_);
  std::vector<Membership> out;
  out.reserve(groups_.size());
  for (const auto& [name, g] : groups_) out.push_back({g.join, g.destroyed});
  return out;
}

void GroupManager::Clear() {
  std::vector<std::shared_ptr<transport::TwoSidedTransport>> all;
  {
    MutexLock lock(mu_);
    for (auto& [name, g] : groups_) {
      if (g.transport) all.push_back(std::move(g.transport));
    }
    groups_.clear();
  }
  for (auto& t : all) t->Abort(Status::Cancelled("shutting down"));
}

}  // namespace ferry::collective
