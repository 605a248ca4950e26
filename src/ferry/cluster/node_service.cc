#include "ferry/cluster/node_service.h"

#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <asio/steady_timer.hpp>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"
#include "ferry/rpc/address.h"
#include "ferry/rpc/connect.h"
#include "ferry/rpc/parse.h"

namespace ferry::cluster {
namespace {

// Connecting to a head: short enough that a wrong address fails fast.
constexpr std::chrono::seconds kHeadConnectTimeout{5};

}  // namespace

StatusOr<std::string> HeadTcpAddress(const std::string& address) {
  std::string a = address;
  if (a.starts_with("ferry://")) a = a.substr(8);
  if (!a.starts_with("tcp:")) a = "tcp:" + a;
  if (a.rfind(':') <= 4) {
    return Status::InvalidArgument("bad head address '" + address + "': expected IP:PORT");
  }
  auto parsed = rpc::ParseAddress(a);
  if (!parsed.ok()) {
    return Status::InvalidArgument("bad head address '" + address + "': expected IP:PORT (" +
                                   parsed.status().message() + ")");
  }
  return parsed->ToString();
}

StatusOr<std::string> LocalAddressToward(const std::string& head) {
  FERRY_ASSIGN_OR_RETURN(rpc::SocketAddress addr, rpc::ParseAddress(head));
  int fd = ::socket(addr.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Internal("socket: " + std::string(std::strerror(errno)));
  sockaddr_storage local{};
  socklen_t length = sizeof(local);
  // A UDP connect sends nothing: it only picks the route and source address.
  bool ok = ::connect(fd, addr.sockaddr_ptr(), addr.length()) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) return Status::Unavailable("no route to " + head + ": " + std::strerror(err));
  FERRY_ASSIGN_OR_RETURN(rpc::SocketAddress me, rpc::SocketAddress::FromSockaddr(
                                                    reinterpret_cast<sockaddr*>(&local), length));
  std::string text = me.ToString();  // "tcp:IP:PORT"
  return text.substr(4, text.rfind(':') - 4);
}

std::string NewSessionName() {
  std::string raw(6, '\0');
  FillRandom(reinterpret_cast<uint8_t*>(raw.data()), raw.size());
  return HexEncode(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
}

std::string NewClusterToken() {
  std::string raw(16, '\0');
  size_t got = 0;
  while (got < raw.size()) {
    ssize_t n = getrandom(raw.data() + got, raw.size() - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  return HexEncode(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
}

StatusOr<std::shared_ptr<rpc::Channel>> ConnectToHead(rpc::IoLoop& loop, const std::string& address,
                                                      const proto::Hello& hello,
                                                      std::shared_ptr<rpc::Dispatcher> dispatcher) {
  auto channel = rpc::Connect(loop, address, hello, std::move(dispatcher),
                              Deadline::After(kHeadConnectTimeout));
  if (channel.ok()) return channel;
  const Status& s = channel.status();
  const std::string where = rpc::TcpAddressOf(address).empty() ? address
                                                               : rpc::TcpAddressOf(address);
  switch (s.code()) {
    case StatusCode::kPermissionDenied:
      return Status::PermissionDenied("the ferry head at " + where +
                                      " rejected the cluster token (pass the token `ferry start "
                                      "--head` printed: --token or FERRY_TOKEN)");
    case StatusCode::kDeadlineExceeded:
      return Status::DeadlineExceeded("no answer from " + where + " within " +
                                      std::to_string(kHeadConnectTimeout.count()) +
                                      " s: it is not a ferry head, or it is unreachable");
    case StatusCode::kUnavailable:
      return Status::Unavailable("no ferry head at " + where + " (" + s.message() +
                                 "); start one with `ferry start --head`");
    default: return s;
  }
}

NodeService::NodeService(NodeServiceOptions options)
    : options_(std::move(options)), dispatcher_(std::make_shared<rpc::Dispatcher>()) {}

StatusOr<std::unique_ptr<NodeService>> NodeService::Start(NodeServiceOptions options) {
  if (options.node_ip.empty() && !options.head) {
    FERRY_ASSIGN_OR_RETURN(std::string head, HeadTcpAddress(options.head_address));
    FERRY_ASSIGN_OR_RETURN(options.node_ip, LocalAddressToward(head));
  }
  if (options.node_ip.empty()) options.node_ip = "127.0.0.1";
  if (options.head && options.token.empty()) options.token = NewClusterToken();
  if (!options.head && options.token.empty()) {
    return Status::InvalidArgument("joining a cluster needs its token (--token or FERRY_TOKEN)");
  }
  std::unique_ptr<NodeService> node(new NodeService(std::move(options)));
  node->loop_.Start();
  Status s = node->options_.head ? node->StartHead() : node->StartJoined();
  if (!s.ok()) {
    node->Shutdown();
    return s;
  }
  return node;
}

NodeService::~NodeService() { Shutdown(); }

Status NodeService::StartHead() {
  HeadOptions head_options;
  head_options.token = options_.token;
  head_options.session = NewSessionName();
  head_options.local_node.id = node_id_;
  head_options.local_node.ip = options_.node_ip;
  head_options.local_node.resources = options_.resources;
  head_options.log_dir = options_.log_dir;
  head_ = std::make_unique<Head>(loop_, *dispatcher_, head_options);
  rpc::ServerOptions server_options;
  server_options.token = options_.token;
  server_options.worker_id = WorkerId::Random().Binary();
  const std::string tcp = "tcp:" + options_.node_ip + ":" + std::to_string(options_.port);
  auto tcp_server = rpc::Server::Listen(loop_, tcp, server_options, dispatcher_, nullptr);
  if (!tcp_server.ok()) {
    if (tcp_server.status().code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists("port " + std::to_string(options_.port) + " on " +
                                   options_.node_ip +
                                   " is in use: is a ferry head already running? (`ferry stop`, "
                                   "or choose another --port)");
    }
    return tcp_server.status().WithContext("listening on " + tcp);
  }
  tcp_server_ = std::move(*tcp_server);
  FERRY_ASSIGN_OR_RETURN(unix_server_,
                         rpc::Server::Listen(loop_, "unix:@ferry-head-" + head_options.session,
                                             server_options, dispatcher_, nullptr));
  head_->SetAddress(unix_server_->address() + "," + tcp_server_->address());
  head_address_ = tcp_server_->address().substr(4);
  FERRY_LOG(INFO) << "ferry head listening on " << head_address_ << " (node " << node_id_.Hex()
                  << ", " << Describe(options_.resources) << ")";
  return Status::Ok();
}

Status NodeService::StartJoined() {
  FERRY_ASSIGN_OR_RETURN(std::string head, HeadTcpAddress(options_.head_address));
  head_address_ = head.substr(4);
  agent_ = std::make_unique<NodeAgent>(
      loop_,
      [this](const std::string& actor_id, const std::string& description) {
        proto::WorkerExited exited;
        exited.set_actor_id(actor_id);
        exited.set_description(description);
        if (head_channel_) head_channel_->Notify(proto::WORKER_EXITED, exited);
      },
      NodeAgentOutput{.log_dir = options_.log_dir,
                      .node_ip = options_.node_ip,
                      .on_output = [this](proto::WorkerOutput output) {
                        if (head_channel_) head_channel_->Notify(proto::WORKER_OUTPUT, output);
                      }});
  dispatcher_->Register(proto::START_WORKER,
                        [this](const std::shared_ptr<rpc::Channel>&, std::string_view payload,
                               rpc::Responder responder) {
                          proto::StartWorker req;
                          if (!rpc::ParseRequest(payload, &req, responder)) return;
                          StatusOr<int> pid = agent_->Start(req);
                          if (!pid.ok()) {
                            responder.ReplyError(pid.status());
                            return;
                          }
                          proto::StartWorkerReply reply;
                          reply.set_pid(*pid);
                          responder.Reply(reply);
                        });
  dispatcher_->Register(proto::STOP_WORKER,
                        [this](const std::shared_ptr<rpc::Channel>&, std::string_view payload,
                               rpc::Responder responder) {
                          proto::StopWorker req;
                          if (!rpc::ParseRequest(payload, &req, responder)) return;
                          agent_->Stop(req.actor_id());
                          responder.Reply(proto::Empty());
                        });
  proto::Hello hello;
  hello.set_token(options_.token);
  hello.set_worker_id(WorkerId::Random().Binary());
  hello.set_pid(getpid());
  FERRY_ASSIGN_OR_RETURN(head_channel_, ConnectToHead(loop_, head, hello, dispatcher_));
  proto::RegisterNode reg;
  reg.set_node_id(node_id_.Binary());
  reg.set_node_ip(options_.node_ip);
  *reg.mutable_total() = ToProto(options_.resources);
  FERRY_ASSIGN_OR_RETURN(std::string payload,
                         head_channel_->CallSync(proto::REGISTER_NODE, reg,
                                                 Deadline::After(std::chrono::seconds(5))));
  proto::RegisterNodeReply reply;
  if (!reply.ParseFromString(payload)) return Status::Internal("malformed RegisterNodeReply");
  head_channel_->SetCloseCallback([this, head](Status why) {
    NoteStopped("lost the connection to the ferry head at " + head.substr(4) +
                (why.ok() ? std::string() : ": " + why.message()));
  });
  loop_.Post([this] {
    heartbeat_ = std::make_unique<asio::steady_timer>(loop_.context());
    Heartbeat();
  });
  FERRY_LOG(INFO) << "node " << node_id_.Hex() << " (" << options_.node_ip << ", "
                  << Describe(options_.resources) << ") joined the ferry head at " << head_address_;
  return Status::Ok();
}

void NodeService::Heartbeat() {
  {
    MutexLock lock(mu_);
    if (shut_down_ || stopped_) return;
  }
  proto::NodeHeartbeat beat;
  beat.set_node_id(node_id_.Binary());
  head_channel_->Notify(proto::NODE_HEARTBEAT, beat);
  heartbeat_->expires_after(Config::Get().heartbeat_interval);
  heartbeat_->async_wait([this](const asio::error_code& ec) {
    if (!ec) Heartbeat();
  });
}

void NodeService::NoteStopped(const std::string& why) {
  MutexLock lock(mu_);
  if (!stopped_) stopped_ = why;
  cv_.notify_all();
}

std::optional<std::string> NodeService::Wait(Deadline deadline) {
  MutexLock lock(mu_);
  auto ready = [this]() FERRY_REQUIRES(mu_) { return stopped_.has_value(); };
  if (deadline.IsNever()) {
    cv_.wait(lock.native(), [&] {
      mu_.AssertHeld();
      return ready();
    });
  } else {
    cv_.wait_until(lock.native(), deadline.time_point(), [&] {
      mu_.AssertHeld();
      return ready();
    });
  }
  return stopped_;
}

void NodeService::Shutdown() {
  {
    MutexLock lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
    if (!stopped_) stopped_ = "stopped";
    cv_.notify_all();
  }
  if (head_) head_->Shutdown();
  if (agent_) agent_->Shutdown();
  if (head_channel_) head_channel_->Close();
  if (tcp_server_) tcp_server_->Close();
  if (unix_server_) unix_server_->Close();
  loop_.Stop();
  loop_.Join();
  heartbeat_.reset();
  head_.reset();
  agent_.reset();
}

}  // namespace ferry::cluster
