// Server: listens on one control-plane address, authenticates every incoming
// connection with the Hello handshake, and hands each live Channel to its
// owner.
//
// Handshake: the connecting side's FIRST frame must be a HELLO request whose
// Hello.token equals the cluster token (compared in constant time). The
// server then replies HelloReply{worker_id, pid} and the channel goes live:
// on_channel receives it, and its incoming requests go to the server's
// Dispatcher. A wrong or missing token, any other first frame, or no Hello
// within handshake_timeout gets a PermissionDenied error reply (when it was a
// request) and the connection is closed, with a warning logged; the server and
// its other channels are untouched.
//
// Lifecycle: Listen() binds and starts accepting; Close() (idempotent, also
// run by the destructor) stops accepting, closes connections still in their
// handshake, and removes a "unix:/path" socket file. Channels already handed
// to on_channel stay open: they belong to whoever received them.
//
// THREAD CONTRACT: Listen/Close/address are thread-safe. on_channel runs on
// the io thread and must not block. Close() from another thread waits until
// the io thread has stopped the acceptor, so on_channel never runs after
// Close() returns. Close the Server before stopping its IoLoop.
//
//   ServerOptions options{.token = cluster_token, .worker_id = my_id.Binary()};
//   FERRY_ASSIGN_OR_RETURN(auto server, Server::Listen(loop, "unix:@ferry-head", options,
//       dispatcher, [&](std::shared_ptr<Channel> ch) { workers.Add(ch); }));
//   std::string where = server->address();   // real port for "tcp:127.0.0.1:0"
//   server->Close();
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "ferry/rpc/channel.h"
#include "ferry/status.h"

namespace ferry::rpc {

class Dispatcher;
class IoLoop;

struct ServerOptions {
  // The cluster token every client must present.
  std::string token;
  // Sent back in HelloReply.
  std::string worker_id;
  int32_t pid = 0;  // 0: this process's pid
  // A connection must complete its handshake within this time. Default:
  // Config rpc_connect_timeout (FERRY_RPC_CONNECT_TIMEOUT_S, 10 s).
  std::chrono::milliseconds handshake_timeout{0};
  int backlog = 1024;
  ChannelOptions channel;
};

class Server {
 public:
  using OnChannel = std::function<void(std::shared_ptr<Channel> channel)>;

  // Binds `address` (see address.h) and starts accepting on `loop`.
  // AlreadyExists if the address is in use, InvalidArgument if malformed.
  static StatusOr<std::unique_ptr<Server>> Listen(IoLoop& loop, const std::string& address,
                                                  ServerOptions options,
                                                  std::shared_ptr<Dispatcher> dispatcher,
                                                  OnChannel on_channel);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound address, canonical ("tcp:127.0.0.1:40123" for port 0).
  const std::string& address() const { return address_; }
  void Close();

 private:
  struct State;
  Server(std::shared_ptr<State> state, std::string address);

  const std::shared_ptr<State> state_;
  const std::string address_;
};

// Compares secrets without an early exit, so timing does not reveal how many
// leading bytes of a guess were right.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace ferry::rpc
