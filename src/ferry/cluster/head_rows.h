// The Head's table rows (an actor, a node, a lease) and the helpers its
// files share. Internal to the Head: head.cc (construction, the key-value
// table, nodes and drivers), head_actors.cc (the actor lifecycle) and
// head_leases.cc (pooled workers for remote functions).
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <asio/steady_timer.hpp>

#include "ferry/cluster/head.h"

namespace ferry::cluster {

struct Head::Actor {
  proto::CreateActor spec;
  proto::ActorInfo info;
  PlacementRequest request;
  bool placed = false;      // holds `request.to_hold` on `node`
  bool launched = false;    // a worker was started (or is being started)
  bool exited = false;      // its worker is gone (or never started)
  bool no_restart = false;  // killed for good: its exit ends it
  // Killed with no_restart=False: its exit restarts it even while it starts.
  bool kill_restarts = false;
  bool pooled = false;  // a pooled worker for remote functions: its leases hold resources
  std::shared_ptr<Node> node;
  std::vector<int> gpus;
  std::string creator;  // worker id of the registered driver that created it, if any
  std::unique_ptr<asio::steady_timer> start_timer;
  std::unique_ptr<asio::steady_timer> queued_timer;
  std::vector<rpc::Responder> settle_waiters;
  std::vector<rpc::Responder> exit_waiters;
  std::vector<rpc::Responder> change_waiters;  // GET_ACTOR_INFO wait_for_change
  std::vector<std::weak_ptr<rpc::Channel>> subscribers;
};

struct Head::Node {
  NodeView view;
  std::string ip;
  bool is_local = false;
  ChannelPtr channel;  // remote nodes: the agent's channel
  Clock::time_point last_heartbeat;
  std::vector<int> free_gpus;
  std::string death_cause;
  std::vector<std::shared_ptr<Actor>> idle_workers;  // pooled, not lent
};

struct Head::Lease {
  std::string id;
  std::shared_ptr<Node> node;
  ResourceMap held;
  std::shared_ptr<Actor> worker;
  const rpc::Channel* holder = nullptr;  // identity only
  bool blocked = false;                  // its task waits in get: `held` is free
};

struct Head::PendingLease {
  proto::LeaseWorker request;
  PlacementRequest placement;
  const rpc::Channel* holder = nullptr;
  rpc::Responder responder;
};

namespace head_internal {

inline proto::StatusProto Unavailable(const std::string& message) {
  proto::StatusProto s;
  s.set_code(static_cast<int>(StatusCode::kUnavailable));
  s.set_message(message);
  return s;
}

inline std::vector<int> GpuIds(const ResourceMap& total) {
  auto it = total.find(kGpu);
  int n = it == total.end() ? 0 : static_cast<int>(std::floor(it->second));
  std::vector<int> ids;
  for (int i = 0; i < n; ++i) ids.push_back(i);
  return ids;
}

inline std::string Join(const std::vector<int>& ids) {
  std::string out;
  for (int id : ids) out += (out.empty() ? "" : ",") + std::to_string(id);
  return out;
}

// Starting for the first time or after its process died.
inline bool IsStarting(const proto::ActorInfo& info) {
  return info.state() == proto::ActorInfo::PENDING || info.state() == proto::ActorInfo::RESTARTING;
}

inline std::string NodeName(const NodeView& view, const std::string& ip) {
  return "node " + view.id.Hex().substr(0, 12) + (ip.empty() ? "" : " (" + ip + ")");
}

}  // namespace head_internal

}  // namespace ferry::cluster
