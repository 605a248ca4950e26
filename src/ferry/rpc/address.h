// SocketAddress: the control plane's address strings, parsed into a
// sockaddr that can be bound or connected to.
//
//   "unix:@name"          Linux abstract socket (nothing on disk; gone with the process)
//   "unix:/path/to/sock"  Unix socket file
//   "tcp:127.0.0.1:PORT"  TCP, IPv4 literal; "tcp:[::1]:PORT" IPv6; "tcp:localhost:PORT";
//   "tcp:PORT"            TCP on 127.0.0.1 (loopback unless an address says otherwise)
// PORT 0 asks the kernel to pick (Server::address() reports the real one).
//
// A process reachable several ways advertises an address list, comma-
// separated, in order of preference: "unix:@ferry-s-w,tcp:10.0.0.2:41234".
// Connect() tries each in turn and moves on only when one is unreachable —
// another host's abstract socket does not exist there — so peers on the same
// host use the Unix socket and others TCP, with no host table to consult.
//
// Lifecycle/THREAD CONTRACT: plain values and pure functions; thread-safe.
//
//   FERRY_ASSIGN_OR_RETURN(SocketAddress a, ParseAddress("unix:@ferry-head"));
//   int fd = ::socket(a.family(), SOCK_STREAM, 0);
//   ::connect(fd, a.sockaddr_ptr(), a.length());
//   std::string s = a.ToString();  // "unix:@ferry-head"
//   bool tcp = a.IsTcp();
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry::rpc {

class SocketAddress {
 public:
  // From a sockaddr (e.g. getsockname after binding port 0).
  static StatusOr<SocketAddress> FromSockaddr(const sockaddr* addr, socklen_t length);

  int family() const { return storage_.ss_family; }
  bool IsTcp() const { return family() == AF_INET || family() == AF_INET6; }
  // For "unix:/path": the path (to unlink at shutdown); empty otherwise.
  std::string UnixPath() const;
  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t length() const { return length_; }
  // The canonical address string.
  std::string ToString() const;

 private:
  friend StatusOr<SocketAddress> ParseAddress(std::string_view address);
  sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

// InvalidArgument (naming the accepted forms) for anything else.
StatusOr<SocketAddress> ParseAddress(std::string_view address);

// The entries of an address list ("a,b" -> {"a", "b"}); empty entries are
// dropped. A single address is a list of one.
std::vector<std::string> SplitAddressList(std::string_view addresses);
// The TCP entry of an address list ("" if none), e.g. to tell a user or
// another host where a process listens.
std::string TcpAddressOf(std::string_view addresses);

}  // namespace ferry::rpc
