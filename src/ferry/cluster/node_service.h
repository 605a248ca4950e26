// NodeService: what `ferry start` runs on a host — the Head plus the host's
// node agent (`--head`), or a node agent that joins a Head on another host
// (`--address`).
//
// Head mode listens on TCP at node_ip:port (every host reaches it there) and
// on an abstract Unix socket (this host's processes, tried first); workers it
// places on this host start in the Head's own NodeAgent. Join mode connects
// to the Head over TCP with the cluster token, registers this host's
// resources, heartbeats every FERRY_HEARTBEAT_INTERVAL_MS, and starts and
// stops workers when the Head asks (START_WORKER / STOP_WORKER). If the Head's
// connection closes, a joined node stops: it kills its workers and Wait()
// returns why.
//
// Lifecycle: Start() returns a running service or a clear error within the
// connect timeout (no head there, wrong token, not a ferry head). Wait()
// blocks until it stops; Shutdown() stops it and kills every worker it
// started; the destructor runs Shutdown().
//
// Thread contract: thread-safe; Shutdown() must not run on the io thread.
//
//   FERRY_ASSIGN_OR_RETURN(auto node, NodeService::Start({.head = true, .node_ip = ip}));
//   std::cout << "ferry start --address " << node->head_address();
//   while (!node->Wait(Deadline::After(1s))) {}
//   node->Shutdown();
#pragma once

#include <condition_variable>
#include <memory>
#include <optional>
#include <string>

#include "ferry/cluster/head.h"
#include "ferry/cluster/node_agent.h"
#include "ferry/cluster/placement.h"
#include "ferry/common/clock.h"
#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/rpc/channel.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"
#include "ferry/rpc/server.h"

namespace ferry::cluster {

struct NodeServiceOptions {
  bool head = false;
  // Join mode: the Head, "IP:PORT" (or "tcp:IP:PORT").
  std::string head_address;
  // Head mode: the TCP port to listen on (Ray's default, 6379).
  int port = 6379;
  // This host's address that other hosts reach.
  std::string node_ip = "127.0.0.1";
  // The cluster token. Head mode: empty makes a new one.
  std::string token;
  ResourceMap resources;
  // Where this host's workers write their log files (worker-*.out/.err);
  // empty: none are written.
  std::string log_dir;
};

// "IP:PORT" -> "tcp:IP:PORT", validated; InvalidArgument naming the form.
StatusOr<std::string> HeadTcpAddress(const std::string& address);
// The local IP this host uses to reach `head` ("tcp:IP:PORT"): the address
// other hosts of the cluster reach this host at, when none was given.
StatusOr<std::string> LocalAddressToward(const std::string& head);
// A fresh cluster token (from the kernel's CSPRNG).
std::string NewClusterToken();
// A fresh session name (hex; names the session's sockets).
std::string NewSessionName();
// Connects to the Head at `address` (an rpc address) with `token`, mapping
// the failures a user can cause to clear errors: Unavailable (nothing
// listens), PermissionDenied (wrong token), DeadlineExceeded (no answer: not
// a ferry head, or unreachable).
StatusOr<std::shared_ptr<rpc::Channel>> ConnectToHead(rpc::IoLoop& loop, const std::string& address,
                                                      const proto::Hello& hello,
                                                      std::shared_ptr<rpc::Dispatcher> dispatcher);

class NodeService {
 public:
  static StatusOr<std::unique_ptr<NodeService>> Start(NodeServiceOptions options);
  ~NodeService();
  NodeService(const NodeService&) = delete;
  NodeService& operator=(const NodeService&) = delete;

  // "IP:PORT" of the Head.
  const std::string& head_address() const { return head_address_; }
  const std::string& token() const { return options_.token; }
  const NodeId& node_id() const { return node_id_; }
  const std::string& node_ip() const { return options_.node_ip; }

  // Blocks until the service stops (Shutdown, or a joined node lost its
  // Head) and returns why; nullopt when `deadline` passes first.
  std::optional<std::string> Wait(Deadline deadline);
  // Stops serving, kills and reaps every worker it started. Idempotent.
  void Shutdown();

 private:
  explicit NodeService(NodeServiceOptions options);
  Status StartHead();
  Status StartJoined();
  void Heartbeat();
  // Any thread: records why the service stops and wakes Wait().
  void NoteStopped(const std::string& why);

  const NodeServiceOptions options_;
  const NodeId node_id_ = NodeId::Random();
  std::string head_address_;
  rpc::IoLoop loop_{"ferry-node"};
  std::shared_ptr<rpc::Dispatcher> dispatcher_;
  std::unique_ptr<Head> head_;                     // head mode
  std::unique_ptr<rpc::Server> unix_server_;       // head mode
  std::unique_ptr<rpc::Server> tcp_server_;        // head mode
  std::unique_ptr<NodeAgent> agent_;               // join mode
  std::shared_ptr<rpc::Channel> head_channel_;     // join mode
  std::unique_ptr<asio::steady_timer> heartbeat_;  // join mode; io thread only

  Mutex mu_;
  std::condition_variable cv_;
  std::optional<std::string> stopped_ FERRY_GUARDED_BY(mu_);
  bool shut_down_ FERRY_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::cluster
