#include "ferry/cluster/head.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <asio.hpp>

#include "ferry/cluster/head_rows.h"
#include "ferry/common/config.h"
#include "ferry/common/logging.h"
#include "ferry/rpc/parse.h"

namespace ferry::cluster {

using namespace head_internal;  // NOLINT: the Head's own helpers

Head::Head(rpc::IoLoop& loop, rpc::Dispatcher& dispatcher, HeadOptions options)
    : loop_(loop),
      options_(std::move(options)),
      local_agent_(loop,
                   [this](const std::string& actor_id, const std::string& description) {
                     OnWorkerExit(actor_id, description);
                   },
                   {.log_dir = options_.log_dir,
                    .node_ip = options_.local_node.ip,
                    .on_output = [this](proto::WorkerOutput output) { RouteOutput(output); }}) {
  auto local = std::make_shared<Node>();
  local->view.id = options_.local_node.id;
  local->view.alive = true;
  local->view.total = options_.local_node.resources;
  local->view.available = local->view.total;
  local->ip = options_.local_node.ip;
  local->is_local = true;
  local->free_gpus = GpuIds(local->view.total);
  {
    MutexLock lock(mu_);
    nodes_.push_back(local);
  }

  auto bind = [this](void (Head::*fn)(std::string_view, rpc::Responder)) {
    return [this, fn](const ChannelPtr&, std::string_view payload, rpc::Responder responder) {
      (this->*fn)(payload, std::move(responder));
    };
  };
  auto bind_channel = [this](
                          void (Head::*fn)(const ChannelPtr&, std::string_view, rpc::Responder)) {
    return [this, fn](const ChannelPtr& ch, std::string_view payload, rpc::Responder responder) {
      (this->*fn)(ch, payload, std::move(responder));
    };
  };
  dispatcher.Register(proto::CREATE_ACTOR, bind_channel(&Head::HandleCreateActor));
  dispatcher.Register(proto::REGISTER_WORKER, bind(&Head::HandleRegisterWorker));
  dispatcher.Register(proto::ACTOR_READY, bind(&Head::HandleActorReady));
  dispatcher.Register(proto::GET_ACTOR_INFO, bind_channel(&Head::HandleGetActorInfo));
  dispatcher.Register(proto::KILL_ACTOR, bind(&Head::HandleKillActor));
  dispatcher.Register(proto::KV_PUT, bind(&Head::HandleKvPut));
  dispatcher.Register(proto::KV_GET, bind(&Head::HandleKvGet));
  dispatcher.Register(proto::KV_DEL, bind(&Head::HandleKvDel));
  dispatcher.Register(proto::REGISTER_NODE, bind_channel(&Head::HandleRegisterNode));
  dispatcher.Register(proto::REGISTER_DRIVER, bind_channel(&Head::HandleRegisterDriver));
  dispatcher.Register(proto::LEASE_WORKER, bind_channel(&Head::HandleLeaseWorker));
  dispatcher.Register(proto::RETURN_WORKER, bind(&Head::HandleReturnWorker));
  dispatcher.Register(proto::LEASE_BLOCKED,
                      [this](const ChannelPtr&, std::string_view payload, rpc::Responder) {
                        HandleLeaseBlocked(payload);
                      });
  dispatcher.Register(proto::NODE_HEARTBEAT, [this](const ChannelPtr&, std::string_view payload,
                                                    rpc::Responder) { HandleHeartbeat(payload); });
  dispatcher.Register(proto::WORKER_EXITED,
                      [this](const ChannelPtr&, std::string_view payload, rpc::Responder) {
                        HandleWorkerExited(payload);
                      });
  dispatcher.Register(proto::WORKER_OUTPUT, [this](const ChannelPtr&, std::string_view payload,
                                                   rpc::Responder) {
    proto::WorkerOutput output;
    if (output.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      RouteOutput(output);
    }
  });
  dispatcher.Register(proto::LIST_ACTORS,
                      [this](const ChannelPtr&, std::string_view, rpc::Responder responder) {
                        HandleListActors(std::move(responder));
                      });
  dispatcher.Register(proto::LIST_PROCESSES,
                      [this](const ChannelPtr&, std::string_view, rpc::Responder responder) {
                        proto::ProcessList list;
                        for (auto& p : Processes()) *list.add_processes() = std::move(p);
                        responder.Reply(list);
                      });
  dispatcher.Register(proto::GET_NODES,
                      [this](const ChannelPtr&, std::string_view, rpc::Responder responder) {
                        HandleGetNodes(std::move(responder));
                      });
}

Head::~Head() { Shutdown(); }

void Head::SetAddress(const std::string& address) {
  {
    MutexLock lock(mu_);
    address_ = address;
  }
  loop_.Post([this] {
    heartbeat_check_ = std::make_unique<asio::steady_timer>(loop_.context());
    CheckHeartbeats();
  });
}

// ---- Key-value table ----------------------------------------------------------

void Head::HandleKvPut(std::string_view payload, rpc::Responder responder) {
  proto::KvPut req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  if (!kv_.Put(req.key(), req.value(), req.overwrite())) {
    responder.ReplyError(Status::AlreadyExists("key '" + req.key() + "' exists"));
    return;
  }
  responder.Reply(proto::Empty());
}

void Head::HandleKvGet(std::string_view payload, rpc::Responder responder) {
  proto::KvGet req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  auto shared = std::make_shared<rpc::Responder>(std::move(responder));
  auto answer = [shared](std::optional<std::string> v) {
    proto::KvGetReply reply;
    reply.set_found(v.has_value());
    if (v) reply.set_value(std::move(*v));
    shared->Reply(reply);
  };
  if (req.wait_ms() <= 0) {
    answer(kv_.Get(req.key()));
    return;
  }
  uint64_t token = kv_.GetOrWait(req.key(), answer);
  if (token == 0) return;  // answered already
  auto timer = std::make_shared<asio::steady_timer>(loop_.context());
  timer->expires_after(ClampedMillis(req.wait_ms()));
  timer->async_wait([this, timer, token](const asio::error_code&) { kv_.Cancel(token); });
}

void Head::HandleKvDel(std::string_view payload, rpc::Responder responder) {
  proto::KvDel req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  kv_.Delete(req.key(), req.prefix());
  responder.Reply(proto::Empty());
}

// ---- Nodes and drivers ----------------------------------------------------------

void Head::HandleRegisterNode(const ChannelPtr& channel, std::string_view payload,
                              rpc::Responder responder) {
  proto::RegisterNode req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  if (!channel) {  // a node is its connection: nothing to keep without one
    responder.ReplyError(Status::InvalidArgument("REGISTER_NODE needs a connection"));
    return;
  }
  auto id = NodeId::FromBinary(req.node_id());
  if (!id.ok()) {
    responder.ReplyError(id.status());
    return;
  }
  auto node = std::make_shared<Node>();
  node->view.id = *id;
  node->view.alive = true;
  node->view.total = FromProto(req.total());
  node->view.available = node->view.total;
  node->ip = req.node_ip();
  node->channel = channel;
  node->last_heartbeat = Clock::now();
  node->free_gpus = GpuIds(node->view.total);
  {
    MutexLock lock(mu_);
    for (auto& n : nodes_) {
      if (n->view.id == *id) {
        lock.Unlock();
        responder.ReplyError(Status::AlreadyExists("node " + id->Hex() + " is already registered"));
        return;
      }
    }
    nodes_.push_back(node);
  }
  FERRY_LOG(INFO) << NodeName(node->view, node->ip) << " joined with "
                  << Describe(node->view.total);
  NodeId node_id = *id;
  channel->SetCloseCallback([this, node_id](Status why) {
    OnNodeLost(node_id, "its node agent's connection to the head closed" +
                            (why.ok() ? std::string() : " (" + why.message() + ")"));
  });
  proto::RegisterNodeReply reply;
  reply.set_session(options_.session);
  reply.set_heartbeat_interval_ms(Config::Get().heartbeat_interval.count());
  responder.Reply(reply);
  PlaceQueued();
}

void Head::HandleHeartbeat(std::string_view payload) {
  proto::NodeHeartbeat beat;
  if (!beat.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return;
  MutexLock lock(mu_);
  for (auto& n : nodes_) {
    if (n->view.id.Binary() == beat.node_id()) n->last_heartbeat = Clock::now();
  }
}

void Head::CheckHeartbeats() {
  std::vector<std::pair<NodeId, std::string>> lost;
  {
    MutexLock lock(mu_);
    if (shut_down_) return;
    const auto timeout = Config::Get().node_timeout;
    for (auto& n : nodes_) {
      if (n->is_local || !n->view.alive) continue;
      if (Clock::now() - n->last_heartbeat > timeout) {
        lost.emplace_back(n->view.id, "the head heard no heartbeat from it for " +
                                          std::to_string(timeout.count() / 1000.0).substr(0, 4) +
                                          " s (FERRY_NODE_TIMEOUT_S)");
      }
    }
  }
  for (auto& [id, why] : lost) OnNodeLost(id, why);
  heartbeat_check_->expires_after(Config::Get().heartbeat_interval);
  heartbeat_check_->async_wait([this](const asio::error_code& ec) {
    if (!ec) CheckHeartbeats();
  });
}

void Head::OnNodeLost(const NodeId& node_id, const std::string& why) {
  std::shared_ptr<Node> node;
  std::vector<std::shared_ptr<Actor>> lost;
  {
    MutexLock lock(mu_);
    for (auto& n : nodes_) {
      if (n->view.id == node_id && n->view.alive) node = n;
    }
    if (!node) return;
    node->view.alive = false;
    node->death_cause = why;
    for (auto& [id, actor] : actors_) {
      if (actor->node == node) lost.push_back(actor);
    }
  }
  const std::string cause = "its " + NodeName(node->view, node->ip) + " died: " + why;
  FERRY_LOG(WARNING) << NodeName(node->view, node->ip) << " is dead: " << why;
  if (node->channel) node->channel->Close();
  for (auto& actor : lost) {
    std::vector<rpc::Responder> exit_waiters;
    bool restart;
    {
      MutexLock lock(mu_);
      actor->exited = true;
      actor->placed = false;
      exit_waiters.swap(actor->exit_waiters);
      restart = MayRestartLocked(*actor);
    }
    if (actor->start_timer) actor->start_timer->cancel();
    if (restart) {
      Restart(actor, "the actor died with " + cause);  // on another node
    } else {
      MarkDead(actor, "the actor died with " + cause);
    }
    for (auto& r : exit_waiters) r.Reply(proto::Empty());
  }
  PlaceQueued();
}

void Head::HandleWorkerExited(std::string_view payload) {
  proto::WorkerExited exited;
  if (!exited.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return;
  OnWorkerExit(exited.actor_id(), exited.description());
}

void Head::HandleGetNodes(rpc::Responder responder) {
  proto::NodeList list;
  for (auto& info : Nodes()) *list.add_nodes() = std::move(info);
  responder.Reply(list);
}

void Head::HandleListActors(rpc::Responder responder) {
  proto::ActorList list;
  for (auto& info : Actors()) *list.add_actors() = std::move(info);
  responder.Reply(list);
}

std::vector<proto::ActorInfo> Head::Actors() {
  MutexLock lock(mu_);
  std::vector<proto::ActorInfo> out;
  out.reserve(actors_.size());
  for (auto& [id, actor] : actors_) {
    out.push_back(actor->info);
    out.back().clear_handle_meta();  // the caller's pickled method table: not state
  }
  return out;
}

std::vector<proto::ProcessInfo> Head::Processes() {
  MutexLock lock(mu_);
  std::vector<proto::ProcessInfo> out;
  if (!options_.driver_worker_id.empty()) {
    proto::ProcessInfo& self = out.emplace_back();
    self.set_kind(proto::ProcessInfo::DRIVER);
    self.set_worker_id(options_.driver_worker_id);
    self.set_address(address_);
    self.set_pid(getpid());
    self.set_node_id(options_.local_node.id.Binary());
    self.set_node_ip(options_.local_node.ip);
  }
  for (const auto& [id, driver] : drivers_) {
    if (!driver.address().empty()) out.push_back(driver);  // listens by its second REGISTER_DRIVER
  }
  for (const auto& [id, actor] : actors_) {
    const proto::ActorInfo& a = actor->info;
    if (a.state() != proto::ActorInfo::ALIVE || a.address().empty()) continue;
    proto::ProcessInfo& p = out.emplace_back();
    p.set_kind(actor->pooled ? proto::ProcessInfo::TASK_WORKER : proto::ProcessInfo::ACTOR);
    p.set_worker_id(a.worker_id());
    p.set_address(a.address());
    p.set_pid(a.pid());
    p.set_node_id(a.node_id());
    p.set_node_ip(a.node_ip());
    p.set_actor_id(a.actor_id());
    p.set_class_name(a.class_name());
  }
  return out;
}

proto::NodeInfo Head::InfoLocked(const Node& node) const {
  proto::NodeInfo info;
  info.set_node_id(node.view.id.Binary());
  info.set_node_ip(node.ip.empty() ? "127.0.0.1" : node.ip);
  info.set_alive(node.view.alive);
  *info.mutable_total() = ToProto(node.view.total);
  *info.mutable_available() = ToProto(node.view.available);
  info.set_death_cause(node.death_cause);
  info.set_is_head(node.is_local);
  info.set_num_actors(node.view.num_actors);
  return info;
}

std::vector<proto::NodeInfo> Head::Nodes() {
  MutexLock lock(mu_);
  std::vector<proto::NodeInfo> out;
  for (auto& n : nodes_) out.push_back(InfoLocked(*n));
  return out;
}

void Head::HandleRegisterDriver(const ChannelPtr& channel, std::string_view payload,
                                rpc::Responder responder) {
  proto::RegisterDriver req;
  if (!rpc::ParseRequest(payload, &req, responder)) return;
  if (!channel) {
    responder.ReplyError(Status::InvalidArgument("REGISTER_DRIVER needs a connection"));
    return;
  }
  proto::RegisterDriverReply reply;
  reply.set_session(options_.session);
  {
    MutexLock lock(mu_);
    for (auto& n : nodes_) {
      if (n->view.alive && !req.node_ip().empty() && n->ip == req.node_ip()) {
        reply.set_node_id(n->view.id.Binary());
        break;
      }
    }
    proto::ProcessInfo& info = drivers_[channel->peer().worker_id()];
    info.set_kind(proto::ProcessInfo::DRIVER);
    info.set_worker_id(channel->peer().worker_id());
    info.set_address(req.address());
    info.set_pid(channel->peer().pid());
    info.set_node_id(reply.node_id());
    info.set_node_ip(req.node_ip());
  }
  std::string driver = channel->peer().worker_id();
  if (req.log_to_driver()) {
    MutexLock lock(mu_);
    output_drivers_[driver] = channel;
  }
  channel->SetCloseCallback([this, driver](Status) { OnDriverGone(driver); });
  responder.Reply(reply);
}

void Head::OnDriverGone(const std::string& driver) {
  // As in Ray, a driver's actors end with it (ferry has no detached actors).
  std::vector<std::shared_ptr<Actor>> orphans;
  {
    MutexLock lock(mu_);
    drivers_.erase(driver);
    output_drivers_.erase(driver);
    for (auto& [id, actor] : actors_) {
      if (!driver.empty() && actor->creator == driver) {
        actor->creator.clear();
        orphans.push_back(actor);
      }
    }
    for (auto& actor : orphans) {
      queued_.erase(std::remove(queued_.begin(), queued_.end(), actor), queued_.end());
    }
  }
  for (auto& actor : orphans) {
    MarkDead(actor, "the driver that created the actor exited");
    StopWorker(actor);
  }
}

// ---- Worker output ------------------------------------------------------------

void Head::RouteOutput(const proto::WorkerOutput& output) {
  std::vector<ChannelPtr> to;
  {
    MutexLock lock(mu_);
    std::string creator;
    auto actor = actors_.find(output.actor_id());
    if (actor != actors_.end()) creator = actor->second->creator;
    for (auto& [driver, channel] : output_drivers_) {
      if (!creator.empty() && driver != creator) continue;
      if (auto ch = channel.lock()) to.push_back(std::move(ch));
    }
  }
  for (auto& ch : to) ch->Notify(proto::WORKER_OUTPUT, output);
  if (options_.print_output) options_.print_output(output);
}

// ---- Accessors and shutdown ---------------------------------------------------

size_t Head::NumLiveWorkers() { return local_agent_.NumLiveWorkers(); }

std::vector<int> Head::WorkerPids() { return local_agent_.WorkerPids(); }

void Head::Shutdown() {
  std::vector<std::shared_ptr<Actor>> all;
  {
    MutexLock lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
    for (auto& [id, actor] : actors_) all.push_back(actor);
    queued_.clear();
  }
  for (auto& actor : all) MarkDead(actor, "ferry was shut down");
  // Remote workers are asked to stop; their agents also stop everything when
  // the head's connection closes.
  for (auto& actor : all) StopWorker(actor);
  local_agent_.Shutdown();
}

}  // namespace ferry::cluster
