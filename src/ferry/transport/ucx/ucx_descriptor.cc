#include "ferry/transport/ucx/ucx_descriptor.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "ferry/common/host_id.h"

namespace ferry::transport::ucx {
namespace {

constexpr uint32_t kEndpointMagic = 0x32585546;    // "FUX2"
constexpr uint32_t kDescriptorMagic = 0x44585546;  // "FUXD"

struct EndpointHeader {
  uint32_t magic;
  uint32_t address_len;
  uint64_t pid;                // the producer process...
  uint64_t start_time;         // ...and when it started: a recycled pid differs here
  char host_key[kHostKeyLen];  // equal only within one boot and pid namespace
};

struct DescriptorHeader {
  uint32_t magic;
  uint32_t rkey_len;
  uint64_t address;
  uint64_t length;
};

}  // namespace

std::string EncodeEndpoint(uint64_t pid, uint64_t start_time, const std::string& host_key,
                           const void* address, size_t len) {
  EndpointHeader h{};
  h.magic = kEndpointMagic;
  h.address_len = static_cast<uint32_t>(len);
  h.pid = pid;
  h.start_time = start_time;
  std::memcpy(h.host_key, host_key.data(), std::min(host_key.size(), kHostKeyLen));
  std::string out(sizeof(h) + len, '\0');
  std::memcpy(out.data(), &h, sizeof(h));
  std::memcpy(out.data() + sizeof(h), address, len);
  return out;
}

StatusOr<Endpoint> ParseEndpoint(std::string_view endpoint) {
  EndpointHeader h;
  if (endpoint.size() < sizeof(h)) {
    return Status::InvalidArgument("ucx transport: endpoint of " + std::to_string(endpoint.size()) +
                                   " bytes is too short");
  }
  std::memcpy(&h, endpoint.data(), sizeof(h));
  if (h.magic != kEndpointMagic || h.address_len == 0 ||
      endpoint.size() != sizeof(h) + h.address_len) {
    return Status::InvalidArgument(
        "ucx transport: malformed endpoint (not made by the ucx backend)");
  }
  Endpoint e;
  e.pid = h.pid;
  e.start_time = h.start_time;
  e.host_key = endpoint.substr(offsetof(EndpointHeader, host_key), kHostKeyLen);
  e.address = endpoint.substr(sizeof(h));
  return e;
}

std::string EncodeDescriptor(uint64_t address, uint64_t length, const void* rkey, size_t rkey_len) {
  DescriptorHeader h{kDescriptorMagic, static_cast<uint32_t>(rkey_len), address, length};
  std::string out(sizeof(h) + rkey_len, '\0');
  std::memcpy(out.data(), &h, sizeof(h));
  if (rkey_len > 0) std::memcpy(out.data() + sizeof(h), rkey, rkey_len);
  return out;
}

StatusOr<Descriptor> ParseDescriptor(std::string_view descriptor) {
  DescriptorHeader h;
  if (descriptor.size() < sizeof(h)) {
    return Status::InvalidArgument("ucx transport: descriptor of " +
                                   std::to_string(descriptor.size()) + " bytes is too short");
  }
  std::memcpy(&h, descriptor.data(), sizeof(h));
  const bool consistent = h.magic == kDescriptorMagic &&
                          descriptor.size() == sizeof(h) + h.rkey_len &&
                          (h.length == 0 || h.rkey_len > 0);
  if (!consistent)
    return Status::InvalidArgument(
        "ucx transport: malformed descriptor (not made by the ucx backend)");
  return Descriptor{h.address, h.length, descriptor.substr(sizeof(h))};
}

// Process identity, carried by the endpoint.

uint64_t ProcessStartTime(uint64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t comm_end = stat.rfind(')');  // the command name may hold spaces
  if (comm_end == std::string::npos) return 0;
  std::istringstream fields(stat.substr(comm_end + 1));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(fields >> field)) return 0;
  }
  return std::strtoull(field.c_str(), nullptr, 10);
}

// Names this kernel boot and pid namespace: two processes with the same key
// can name each other by pid. Empty if it cannot be read.
std::string HostKey() {
  const std::string host = HostId();
  struct stat ns;
  if (host.starts_with("pid-") || stat("/proc/self/ns/pid", &ns) != 0) return "";
  std::string key = host.substr(0, kHostKeyLen - 12) + "/" + std::to_string(ns.st_ino);
  key.resize(kHostKeyLen, '\0');
  return key;
}

}  // namespace ferry::transport::ucx
