#include "ferry/rpc/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <charconv>
#include <cstddef>
#include <cstring>

namespace ferry::rpc {
namespace {

constexpr size_t kMaxUnixPath = sizeof(sockaddr_un::sun_path) - 1;

Status Bad(std::string_view address, std::string_view why) {
  return Status::InvalidArgument("bad address '" + std::string(address) + "': " + std::string(why) +
                                 " (expected unix:@name, unix:/path or tcp:HOST:PORT)");
}

}  // namespace

StatusOr<SocketAddress> ParseAddress(std::string_view address) {
  SocketAddress out;
  if (address.starts_with("unix:")) {
    std::string_view rest = address.substr(5);
    bool abstract = rest.starts_with('@');
    if (abstract) rest.remove_prefix(1);
    if (rest.empty()) return Bad(address, "empty socket name");
    if (rest.size() > kMaxUnixPath) return Bad(address, "socket name too long");
    if (rest.find('\0') != std::string_view::npos) return Bad(address, "NUL in socket name");
    auto* un = reinterpret_cast<sockaddr_un*>(&out.storage_);
    un->sun_family = AF_UNIX;
    if (abstract) {
      // Abstract names start with a NUL byte and are exactly as long as the
      // length says (no terminator).
      un->sun_path[0] = '\0';
      std::memcpy(un->sun_path + 1, rest.data(), rest.size());
      out.length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + rest.size());
    } else {
      std::memcpy(un->sun_path, rest.data(), rest.size());
      out.length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + rest.size() + 1);
    }
    return out;
  }
  if (address.starts_with("tcp:")) {
    std::string_view rest = address.substr(4);
    std::string host = "127.0.0.1";
    std::string_view port_text = rest;
    size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos) {
      host = std::string(rest.substr(0, colon));
      port_text = rest.substr(colon + 1);
      if (host.empty()) host = "127.0.0.1";
    }
    if (host == "localhost") host = "127.0.0.1";
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
      return Bad(address, "bad port");
    }
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage_);
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(static_cast<uint16_t>(port));
      std::string literal = host.substr(1, host.size() - 2);
      if (::inet_pton(AF_INET6, literal.c_str(), &in6->sin6_addr) != 1) {
        return Bad(address, "bad IPv6 literal");
      }
      out.length_ = sizeof(sockaddr_in6);
      return out;
    }
    auto* in4 = reinterpret_cast<sockaddr_in*>(&out.storage_);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &in4->sin_addr) != 1) {
      return Bad(address, "host must be an IP literal or localhost");
    }
    out.length_ = sizeof(sockaddr_in);
    return out;
  }
  return Bad(address, "unknown scheme");
}

StatusOr<SocketAddress> SocketAddress::FromSockaddr(const sockaddr* addr, socklen_t length) {
  if (length > sizeof(sockaddr_storage) || length < sizeof(sa_family_t)) {
    return Status::InvalidArgument("bad sockaddr length " + std::to_string(length));
  }
  SocketAddress out;
  std::memcpy(&out.storage_, addr, length);
  out.length_ = length;
  return out;
}

std::string SocketAddress::UnixPath() const {
  if (family() != AF_UNIX) return "";
  const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
  size_t n = length_ - offsetof(sockaddr_un, sun_path);
  if (n == 0 || un->sun_path[0] == '\0') return "";
  return std::string(un->sun_path, strnlen(un->sun_path, n));
}

std::string SocketAddress::ToString() const {
  char text[INET6_ADDRSTRLEN] = {};
  switch (family()) {
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
      size_t n = length_ > offsetof(sockaddr_un, sun_path)
                     ? length_ - offsetof(sockaddr_un, sun_path)
                     : 0;
      if (n == 0) return "unix:(unnamed)";
      if (un->sun_path[0] == '\0') return "unix:@" + std::string(un->sun_path + 1, n - 1);
      return "unix:" + std::string(un->sun_path, strnlen(un->sun_path, n));
    }
    case AF_INET: {
      const auto* in4 = reinterpret_cast<const sockaddr_in*>(&storage_);
      ::inet_ntop(AF_INET, &in4->sin_addr, text, sizeof(text));
      return "tcp:" + std::string(text) + ":" + std::to_string(ntohs(in4->sin_port));
    }
    case AF_INET6: {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
      return "tcp:[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
    }
    default: return "family" + std::to_string(family()) + ":?";
  }
}

std::vector<std::string> SplitAddressList(std::string_view addresses) {
  std::vector<std::string> out;
  while (!addresses.empty()) {
    size_t comma = addresses.find(',');
    std::string_view one = addresses.substr(0, comma);
    if (!one.empty()) out.emplace_back(one);
    if (comma == std::string_view::npos) break;
    addresses.remove_prefix(comma + 1);
  }
  return out;
}

std::string TcpAddressOf(std::string_view addresses) {
  for (const std::string& one : SplitAddressList(addresses)) {
    if (one.starts_with("tcp:")) return one;
  }
  return "";
}

}  // namespace ferry::rpc
