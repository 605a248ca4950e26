#include "ferry/rpc/server.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include <asio/basic_socket_acceptor.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/steady_timer.hpp>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/address.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"

namespace ferry::rpc {
namespace {

// After accept() fails for lack of resources (EMFILE...), wait this long
// before trying again instead of spinning.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);
// Bound on how long Close() waits for the io thread to stop the acceptor.
constexpr auto kCloseWait = std::chrono::seconds(30);

StatusOr<int> BindAndListen(const SocketAddress& addr, int backlog) {
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Internal(std::string("socket: ") + std::strerror(errno));
  if (addr.IsTcp()) {
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  }
  int rc = ::bind(fd, addr.sockaddr_ptr(), addr.length());
  if (rc != 0 && errno == EADDRINUSE && !addr.UnixPath().empty()) {
    // A socket file left by a dead process refuses connections: replace it.
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool stale = probe >= 0 && ::connect(probe, addr.sockaddr_ptr(), addr.length()) != 0 &&
                 errno == ECONNREFUSED;
    if (probe >= 0) ::close(probe);
    if (stale) {
      ::unlink(addr.UnixPath().c_str());
      rc = ::bind(fd, addr.sockaddr_ptr(), addr.length());
    } else {
      errno = EADDRINUSE;
    }
  }
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    std::string msg = "cannot bind " + addr.ToString() + ": " + std::strerror(err);
    if (err == EADDRINUSE) return Status::AlreadyExists(msg);
    return Status::Unavailable(msg);
  }
  if (::listen(fd, backlog) != 0) {
    int err = errno;
    ::close(fd);
    return Status::Internal("listen on " + addr.ToString() + ": " + std::strerror(err));
  }
  return fd;
}

}  // namespace

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Length is not secret (tokens have a fixed size); the content is.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
  // Keep the compiler from turning the loop into an early-exit compare.
  asm volatile("" : "+r"(diff));
  return diff == 0;
}

struct Server::State : std::enable_shared_from_this<State> {
  State(IoLoop& loop_in, ServerOptions options_in, std::shared_ptr<Dispatcher> dispatcher_in,
        OnChannel on_channel_in)
      : loop(loop_in),
        options(std::move(options_in)),
        dispatcher(std::move(dispatcher_in)),
        on_channel(std::move(on_channel_in)),
        acceptor(loop_in.context()) {}

  // Const after Listen().
  IoLoop& loop;
  const ServerOptions options;
  const std::shared_ptr<Dispatcher> dispatcher;
  const OnChannel on_channel;
  std::string address;
  std::string unix_path;  // socket file to remove at Close()

  // Io thread only.
  asio::basic_socket_acceptor<asio::generic::stream_protocol> acceptor;
  std::unique_ptr<asio::steady_timer> retry_timer;
  bool closed = false;
  struct Handshake {
    std::shared_ptr<Channel> channel;
    std::unique_ptr<asio::steady_timer> timer;
  };
  std::unordered_map<Channel*, Handshake> handshaking;

  void WaitForConnections();
  void AcceptAll();
  void OnFirstFrame(const std::shared_ptr<Channel>& channel, const FrameHeader& header,
                    std::string_view payload, Responder responder);
  void CloseOnLoop();
};

void Server::State::WaitForConnections() {
  if (closed) return;
  acceptor.async_wait(asio::socket_base::wait_read,
                      [self = shared_from_this()](const std::error_code& ec) {
                        if (self->closed || ec == asio::error::operation_aborted) return;
                        if (ec)
                          FERRY_LOG(WARNING)
                              << "accept wait on " << self->address << ": " << ec.message();
                        self->AcceptAll();
                      });
}

void Server::State::AcceptAll() {
  for (;;) {
    int fd = ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      FERRY_LOG(WARNING) << "accept on " << address << " failed: " << std::strerror(errno)
                         << "; retrying";
      retry_timer = std::make_unique<asio::steady_timer>(loop.context(), kAcceptRetryDelay);
      retry_timer->async_wait([self = shared_from_this()](const std::error_code& ec) {
        if (!ec) self->WaitForConnections();
      });
      return;
    }
    StatusOr<std::shared_ptr<Channel>> created = Channel::Create(
        loop, fd, dispatcher, "unauthenticated client of " + address, options.channel);
    if (!created.ok()) {
      FERRY_LOG(WARNING) << "dropping connection to " << address << ": " << created.status();
      continue;
    }
    std::shared_ptr<Channel> channel = std::move(*created);
    std::weak_ptr<State> weak = weak_from_this();
    channel->SetFirstFrameHook([weak](const std::shared_ptr<Channel>& ch, const FrameHeader& h,
                                      std::string_view payload, Responder r) {
      if (auto self = weak.lock()) {
        self->OnFirstFrame(ch, h, payload, std::move(r));
      } else {
        ch->Close();
      }
    });
    auto timer = std::make_unique<asio::steady_timer>(loop.context(), options.handshake_timeout);
    timer->async_wait([weak, raw = channel.get()](const std::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      auto it = self->handshaking.find(raw);
      if (it == self->handshaking.end()) return;
      FERRY_LOG(WARNING) << "closing connection to " << self->address
                         << ": no Hello within the handshake timeout";
      std::shared_ptr<Channel> ch = std::move(it->second.channel);
      self->handshaking.erase(it);
      ch->Close();
    });
    Channel* raw = channel.get();
    handshaking.emplace(raw, Handshake{channel, std::move(timer)});
    channel->Start();
  }
  WaitForConnections();
}

void Server::State::OnFirstFrame(const std::shared_ptr<Channel>& channel, const FrameHeader& header,
                                 std::string_view payload, Responder responder) {
  auto it = handshaking.find(channel.get());
  if (it != handshaking.end()) {
    it->second.timer->cancel();
    handshaking.erase(it);
  }
  proto::Hello hello;
  Status verdict;
  if (header.method != proto::HELLO || header.kind != FrameKind::kRequest) {
    verdict = Status::PermissionDenied("the first frame must be a HELLO request (got method " +
                                       std::to_string(header.method) + ")");
  } else if (!hello.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    verdict = Status::PermissionDenied("malformed Hello");
  } else if (!ConstantTimeEquals(hello.token(), options.token)) {
    verdict = Status::PermissionDenied("wrong cluster token");
  } else if (closed) {
    verdict = Status::Unavailable("server " + address + " is shutting down");
  }
  if (!verdict.ok()) {
    FERRY_LOG(WARNING) << "rejecting connection to " << address << " (pid " << hello.pid()
                       << "): " << verdict.message();
    responder.ReplyError(verdict);
    channel->CloseAfterFlush(verdict);
    return;
  }
  hello.clear_token();  // nobody downstream needs the secret
  std::string name = (hello.address().empty() ? std::string("client") : hello.address()) +
                     " (pid " + std::to_string(hello.pid()) + ")";
  channel->SetPeer(std::move(hello), std::move(name));
  proto::HelloReply reply;
  reply.set_worker_id(options.worker_id);
  reply.set_pid(options.pid != 0 ? options.pid : static_cast<int32_t>(::getpid()));
  responder.Reply(reply);
  // Runs before any later frame of this connection is dispatched (same
  // thread), so the owner sees the channel before its first request.
  if (on_channel) on_channel(channel);
}

void Server::State::CloseOnLoop() {
  if (closed) return;
  closed = true;
  asio::error_code ec;
  acceptor.close(ec);
  if (retry_timer) retry_timer->cancel();
  auto pending = std::move(handshaking);
  handshaking.clear();
  for (auto& [raw, hs] : pending) {
    hs.timer->cancel();
    hs.channel->Close();
  }
  if (!unix_path.empty()) ::unlink(unix_path.c_str());
}

StatusOr<std::unique_ptr<Server>> Server::Listen(IoLoop& loop, const std::string& address,
                                                 ServerOptions options,
                                                 std::shared_ptr<Dispatcher> dispatcher,
                                                 OnChannel on_channel) {
  FERRY_ASSIGN_OR_RETURN(SocketAddress addr, ParseAddress(address));
  if (options.handshake_timeout.count() <= 0) {
    options.handshake_timeout = Config::Get().rpc_connect_timeout;
  }
  if (dispatcher) dispatcher->Freeze();
  FERRY_ASSIGN_OR_RETURN(int fd, BindAndListen(addr, options.backlog));
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  std::string real = addr.ToString();
  if (addr.IsTcp() && ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
    auto b = SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&bound), len);
    if (b.ok()) real = b->ToString();
  }
  auto state = std::make_shared<State>(loop, std::move(options), std::move(dispatcher),
                                       std::move(on_channel));
  state->address = real;
  state->unix_path = addr.UnixPath();
  asio::error_code ec;
  int protocol = addr.IsTcp() ? IPPROTO_TCP : 0;
  state->acceptor.assign(asio::generic::stream_protocol(addr.family(), protocol), fd, ec);
  if (ec) {
    ::close(fd);
    return Status::Internal("cannot register listener with the io loop: " + ec.message());
  }
  loop.Post([state] { state->WaitForConnections(); });
  return std::unique_ptr<Server>(new Server(std::move(state), std::move(real)));
}

Server::Server(std::shared_ptr<State> state, std::string address)
    : state_(std::move(state)), address_(std::move(address)) {}

Server::~Server() { Close(); }

void Server::Close() {
  IoLoop& loop = state_->loop;
  if (loop.InLoopThread() || !loop.Running()) {
    // On the io thread, or no io thread will run handlers again.
    state_->CloseOnLoop();
    return;
  }
  struct Done {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
  };
  auto done = std::make_shared<Done>();
  loop.Post([state = state_, done] {
    state->CloseOnLoop();
    std::lock_guard<std::mutex> lock(done->mu);
    done->done = true;
    done->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(done->mu);
  if (!done->cv.wait_for(lock, kCloseWait, [&] { return done->done; })) {
    FERRY_LOG(ERROR) << "Server::Close: io thread did not stop the acceptor of " << address_
                     << " in time";
  }
}

}  // namespace ferry::rpc
