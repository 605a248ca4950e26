#include "ferry/transport/shm/shm_descriptor.h"

#include <unistd.h>

#include <charconv>
#include <cstring>
#include <string_view>
#include <utility>

#include "ferry/transport/shm/shm_producer.h"

namespace ferry::transport {
namespace {

constexpr std::string_view kEndpointPrefix = "shm1";

}  // namespace

// ---- Endpoint ---------------------------------------------------------------

std::string ShmEndpoint::Encode() const {
  return std::string(kEndpointPrefix) + ":" + boot_id + ":" + std::to_string(pid) + ":" +
         std::to_string(start_time);
}

StatusOr<ShmEndpoint> ShmEndpoint::Decode(std::string_view endpoint) {
  auto bad = [&](const char* why) {
    return Status::InvalidArgument("shm transport: malformed endpoint (" + std::string(why) +
                                   "): '" + std::string(endpoint.substr(0, 100)) + "'");
  };
  std::vector<std::string_view> parts;
  std::string_view rest = endpoint;
  while (true) {
    const size_t colon = rest.find(':');
    parts.push_back(rest.substr(0, colon));
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  if (parts.size() != 4 || parts[0] != kEndpointPrefix)
    return bad("expected shm1:<boot id>:<pid>:<start time>");
  ShmEndpoint ep;
  if (parts[1].empty() || parts[1].size() > 64) return bad("boot id");
  ep.boot_id = std::string(parts[1]);
  int64_t pid = 0;
  auto [p1, e1] = std::from_chars(parts[2].data(), parts[2].data() + parts[2].size(), pid);
  if (e1 != std::errc() || p1 != parts[2].data() + parts[2].size() || pid <= 0 || pid > INT32_MAX)
    return bad("pid");
  ep.pid = static_cast<pid_t>(pid);
  auto [p2, e2] = std::from_chars(parts[3].data(), parts[3].data() + parts[3].size(),
                                  ep.start_time);
  if (e2 != std::errc() || p2 != parts[3].data() + parts[3].size()) return bad("start time");
  return ep;
}

StatusOr<ShmEndpoint> ShmEndpoint::Self() {
  ShmEndpoint ep;
  ep.boot_id = shm_internal::BootId();
  ep.pid = getpid();
  auto ps = shm_internal::ReadProcStat(0);
  if (!ps.ok())
    return Status::Internal("shm transport: cannot read /proc/self/stat: " + ps.status().message());
  ep.start_time = ps->start_time;
  return ep;
}

namespace shm_internal {
namespace {

// ---- Descriptors (layout in shm_descriptor.h) ------------------------------

constexpr char kMagic[4] = {'F', 'S', 'H', '1'};
constexpr size_t kHeaderBytes = 8;
constexpr size_t kArenaDescriptorBytes = kHeaderBytes + 4 + 8 + 8 + 8;
constexpr size_t kVmDescriptorBytes = kHeaderBytes + 8 + 8;

template <typename T>
void Put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(v));
}

template <typename T>
T Get(std::string_view in, size_t* pos) {
  T v;
  std::memcpy(&v, in.data() + *pos, sizeof(v));
  *pos += sizeof(v);
  return v;
}

std::string Header(DescriptorKind kind) {
  std::string out(kMagic, sizeof(kMagic));
  out.push_back(static_cast<char>(kind));
  out.append(3, '\0');
  return out;
}

}  // namespace

std::string EncodeArenaDescriptor(int32_t fd, uint64_t inode, uint64_t offset, uint64_t length) {
  std::string out = Header(DescriptorKind::kArena);
  Put(out, fd);
  Put(out, inode);
  Put(out, offset);
  Put(out, length);
  return out;
}

std::string EncodeVmDescriptor(uint64_t address, uint64_t length) {
  std::string out = Header(DescriptorKind::kVm);
  Put(out, address);
  Put(out, length);
  return out;
}

// ---- Pull items -------------------------------------------------------------

std::string ParsedItem::Where() const {
  return "shm transport: item " + std::to_string(index) + " from producer process " +
         std::to_string(endpoint.pid);
}

StatusOr<std::vector<ParsedItem>> ParsePullItems(std::span<const PullItem> items) {
  std::vector<ParsedItem> parsed(items.size());
  const std::string_view* last_endpoint = nullptr;
  for (size_t i = 0; i < items.size(); ++i) {
    const PullItem& item = items[i];
    ParsedItem& p = parsed[i];
    p.index = i;
    if (last_endpoint != nullptr && *last_endpoint == item.endpoint) {
      p.endpoint = parsed[i - 1].endpoint;
    } else {
      auto ep = ShmEndpoint::Decode(item.endpoint);
      if (!ep.ok()) return ep.status().WithContext("item " + std::to_string(i));
      if (ep->boot_id != BootId()) {
        return Status::FailedPrecondition("shm transport: item " + std::to_string(i) +
                                          " names a process on another host (boot id " +
                                          ep->boot_id + ", this host " + BootId() +
                                          "); shm only moves bytes within one host: use 'nixl'");
      }
      p.endpoint = std::move(*ep);
    }
    last_endpoint = &item.endpoint;

    const std::string_view d = item.descriptor;
    if (d.size() < kHeaderBytes || std::memcmp(d.data(), kMagic, sizeof(kMagic)) != 0) {
      return Status::InvalidArgument("shm transport: item " + std::to_string(i) +
                                     ": malformed descriptor (" + std::to_string(d.size()) +
                                     " bytes, bad header)");
    }
    p.kind = static_cast<DescriptorKind>(d[4]);
    size_t pos = kHeaderBytes;
    if (p.kind == DescriptorKind::kArena && d.size() == kArenaDescriptorBytes) {
      p.fd = Get<int32_t>(d, &pos);
      p.inode = Get<uint64_t>(d, &pos);
      p.offset = Get<uint64_t>(d, &pos);
      p.length = Get<uint64_t>(d, &pos);
      if (p.fd < 0 || p.offset + p.length < p.offset) {
        return Status::InvalidArgument("shm transport: item " + std::to_string(i) +
                                       ": malformed arena descriptor");
      }
    } else if (p.kind == DescriptorKind::kVm && d.size() == kVmDescriptorBytes) {
      p.address = Get<uint64_t>(d, &pos);
      p.length = Get<uint64_t>(d, &pos);
      if (p.address + p.length < p.address || (p.length > 0 && p.address == 0)) {
        return Status::InvalidArgument("shm transport: item " + std::to_string(i) +
                                       ": malformed vm descriptor");
      }
    } else {
      return Status::InvalidArgument(
          "shm transport: item " + std::to_string(i) + ": malformed descriptor (kind " +
          std::to_string(static_cast<int>(d[4])) + ", " + std::to_string(d.size()) + " bytes)");
    }
    if (item.dst.nbytes != p.length) {
      return Status::InvalidArgument("shm transport: item " + std::to_string(i) +
                                     ": destination holds " + std::to_string(item.dst.nbytes) +
                                     " bytes, the exported buffer " + std::to_string(p.length));
    }
    if (p.length > 0 && item.dst.data == nullptr) {
      return Status::InvalidArgument("shm transport: item " + std::to_string(i) +
                                     ": null destination");
    }
    p.dst = item.dst.data;
  }
  return parsed;
}

}  // namespace shm_internal
}  // namespace ferry::transport
