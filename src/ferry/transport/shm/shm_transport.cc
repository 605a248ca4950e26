#include "ferry/transport/shm/shm_transport.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ferry/common/config.h"
#include "ferry/common/logging.h"

namespace ferry::transport {
namespace {

constexpr std::string_view kEndpointPrefix = "shm1";

// Copies and process_vm_readv calls are cut into pieces this large so that a
// deadline is noticed within a few milliseconds.
constexpr uint64_t kChunkBytes = uint64_t{64} << 20;

// Pidfds kept for liveness checks; beyond this, dead producers' go first,
// then arbitrary ones (they are reopened on demand).
constexpr size_t kMaxProducerHandles = 256;

// ---- Descriptors -----------------------------------------------------------
//
// Binary, fixed size per kind, native byte order (both ends share a host):
//   magic "FSH1" | kind u8 | 3 zero bytes | kind-specific fields.
// ARENA: fd i32 | inode u64 | offset u64 | length u64   (36 bytes)
// VM:    address u64 | length u64                        (24 bytes)

constexpr char kMagic[4] = {'F', 'S', 'H', '1'};
enum class Kind : uint8_t { kArena = 1, kVm = 2 };
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

std::string Header(Kind kind) {
  std::string out(kMagic, sizeof(kMagic));
  out.push_back(static_cast<char>(kind));
  out.append(3, '\0');
  return out;
}

std::string ArenaDescriptor(int32_t fd, uint64_t inode, uint64_t offset, uint64_t length) {
  std::string out = Header(Kind::kArena);
  Put(out, fd);
  Put(out, inode);
  Put(out, offset);
  Put(out, length);
  return out;
}

std::string VmDescriptor(uint64_t address, uint64_t length) {
  std::string out = Header(Kind::kVm);
  Put(out, address);
  Put(out, length);
  return out;
}

// ---- This host and its processes --------------------------------------------

StatusOr<std::string> ReadSmallFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Unavailable("open " + path + ": " + std::strerror(errno));
  std::string out;
  char buf[1024];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return Status::Unavailable("read " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

const std::string& BootId() {
  static const std::string* boot_id = [] {
    auto read = ReadSmallFile("/proc/sys/kernel/random/boot_id");
    FERRY_CHECK(read.ok()) << "shm transport: " << read.status();
    std::string id = *read;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    return new std::string(std::move(id));
  }();
  return *boot_id;
}

struct ProcState {
  char state = '?';
  uint64_t start_time = 0;
};

// Parses /proc/<pid>/stat (or /proc/self/stat when pid == 0). NotFound if
// the process does not exist.
StatusOr<ProcState> ReadProcStat(pid_t pid) {
  const std::string path = pid == 0 ? "/proc/self/stat" : "/proc/" + std::to_string(pid) + "/stat";
  auto text = ReadSmallFile(path);
  if (!text.ok()) return Status::NotFound("process " + std::to_string(pid) + " does not exist");
  // "pid (comm) state ppid ..."; comm may hold spaces and ')', so parse from
  // the last ')'. starttime is field 22, the 20th after the ')'.
  const size_t close_paren = text->rfind(')');
  if (close_paren == std::string::npos) return Status::Internal("malformed " + path);
  std::string_view rest = std::string_view(*text).substr(close_paren + 1);
  ProcState ps;
  int field = 2;  // the ')' ends field 2
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const size_t end = std::min(rest.find(' '), rest.size());
    std::string_view token = rest.substr(0, end);
    rest.remove_prefix(end);
    if (token.empty()) break;
    ++field;
    if (field == 3) ps.state = token.front();
    if (field == 22) {
      auto [p, ec] = std::from_chars(token.data(), token.data() + token.size(), ps.start_time);
      if (ec != std::errc()) return Status::Internal("malformed start time in " + path);
      return ps;
    }
  }
  return Status::Internal("short " + path);
}

// True if `pid` is the live (not zombie) process that started at `start_time`.
bool SameLiveProcess(pid_t pid, uint64_t start_time) {
  auto ps = ReadProcStat(pid);
  return ps.ok() && ps->start_time == start_time && ps->state != 'Z' && ps->state != 'X';
}

std::string ProducerName(const ShmEndpoint& ep) { return "producer process " + std::to_string(ep.pid); }

Status ProducerDied(const ShmEndpoint& ep) {
  return Status::Unavailable("shm transport: the producer process died (pid " + std::to_string(ep.pid) +
                             " is gone or is another process now)");
}

// ---- Copying ----------------------------------------------------------------
//
// Measured here (AMD EPYC, 32 MiB L3, 4 KiB source pages of another
// process's mapping, warm destination): up to ~4 MiB glibc memcpy wins
// (~25 GB/s, everything in cache); from ~8 MiB on, AVX2 streaming stores win
// clearly: 20.7 vs 16.8 GB/s at 8 MiB, 14.5 vs 8.5 at 32 MiB, 15.1 vs 12.1
// at 256 MiB, because glibc only switches to non-temporal stores far above
// the L3 size and in between evicts the source it is about to read.
// rep movsb was no better than memcpy, a software prefetch no better than
// none, and two threads gained only ~20% for twice the CPU. Mapping with
// MAP_POPULATE or MADV_POPULATE_READ made the first pull slower, not faster
// (the copy's own read faults map 16 pages each), so mappings are plain and
// cached instead.
constexpr uint64_t kStreamingBytes = uint64_t{6} << 20;

#if defined(__x86_64__)
__attribute__((target("avx2"))) void StreamCopyAvx2(uint8_t* d, const uint8_t* s, size_t n) {
  // Align the destination to 32 bytes for the streaming stores.
  const size_t head = std::min(n, (32 - (reinterpret_cast<uintptr_t>(d) & 31)) & 31);
  std::memcpy(d, s, head);
  d += head;
  s += head;
  n -= head;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i));
    __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 32));
    __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 64));
    __m256i e = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 96));
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i), a);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i + 32), b);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i + 64), c);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i + 96), e);
  }
  _mm_sfence();  // streaming stores are weakly ordered
  std::memcpy(d + i, s + i, n - i);
}

bool HaveAvx2() {
  static const bool have = __builtin_cpu_supports("avx2");
  return have;
}
#endif

// One piece of an item; `streaming` is decided once per item by its size.
void CopyPiece(void* dst, const void* src, size_t n, bool streaming) {
#if defined(__x86_64__)
  if (streaming && HaveAvx2()) {
    StreamCopyAvx2(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), n);
    return;
  }
#endif
  std::memcpy(dst, src, n);
}

Status OpenError(const std::string& path, int err, const std::string& what) {
  if (err == ENOENT || err == ESRCH) {
    return Status::Unavailable("shm transport: " + path + " is gone: the producer exited or freed " + what);
  }
  if (err == EACCES || err == EPERM) {
    return Status::PermissionDenied("shm transport: cannot open " + path + " (" + std::strerror(err) +
                                    "); producer and consumer must run as the same user");
  }
  if (err == EMFILE || err == ENFILE || err == ENOMEM) {
    return Status::ResourceExhausted("shm transport: open " + path + ": " + std::strerror(err));
  }
  return Status::Aborted("shm transport: open " + path + ": " + std::strerror(err));
}

}  // namespace

// ---- Endpoint ---------------------------------------------------------------

std::string ShmEndpoint::Encode() const {
  return std::string(kEndpointPrefix) + ":" + boot_id + ":" + std::to_string(pid) + ":" + std::to_string(start_time);
}

StatusOr<ShmEndpoint> ShmEndpoint::Decode(std::string_view endpoint) {
  auto bad = [&](const char* why) {
    return Status::InvalidArgument("shm transport: malformed endpoint (" + std::string(why) + "): '" +
                                   std::string(endpoint.substr(0, 100)) + "'");
  };
  std::vector<std::string_view> parts;
  std::string_view rest = endpoint;
  while (true) {
    const size_t colon = rest.find(':');
    parts.push_back(rest.substr(0, colon));
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  if (parts.size() != 4 || parts[0] != kEndpointPrefix) return bad("expected shm1:<boot id>:<pid>:<start time>");
  ShmEndpoint ep;
  if (parts[1].empty() || parts[1].size() > 64) return bad("boot id");
  ep.boot_id = std::string(parts[1]);
  int64_t pid = 0;
  auto [p1, e1] = std::from_chars(parts[2].data(), parts[2].data() + parts[2].size(), pid);
  if (e1 != std::errc() || p1 != parts[2].data() + parts[2].size() || pid <= 0 || pid > INT32_MAX) return bad("pid");
  ep.pid = static_cast<pid_t>(pid);
  auto [p2, e2] = std::from_chars(parts[3].data(), parts[3].data() + parts[3].size(), ep.start_time);
  if (e2 != std::errc() || p2 != parts[3].data() + parts[3].size()) return bad("start time");
  return ep;
}

StatusOr<ShmEndpoint> ShmEndpoint::Self() {
  ShmEndpoint ep;
  ep.boot_id = BootId();
  ep.pid = getpid();
  auto ps = ReadProcStat(0);
  if (!ps.ok()) return Status::Internal("shm transport: cannot read /proc/self/stat: " + ps.status().message());
  ep.start_time = ps->start_time;
  return ep;
}

// ---- Factory ----------------------------------------------------------------

std::unique_ptr<OneSidedTransport> CreateShmTransport() { return std::make_unique<ShmTransport>(); }

bool IsLocalShmEndpoint(std::string_view endpoint) {
  auto ep = ShmEndpoint::Decode(endpoint);
  return ep.ok() && ep->boot_id == BootId();
}

ShmTransportOptions ShmTransportOptions::FromEnv() {
  ShmTransportOptions o;
  const int64_t bytes = EnvInt("FERRY_SHM_MAP_CACHE_BYTES", static_cast<int64_t>(kDefaultMapCacheBytes));
  o.map_cache_bytes = bytes < 0 ? 0 : static_cast<uint64_t>(bytes);
  return o;
}

// ---- Transport --------------------------------------------------------------

struct ShmTransport::Mapping {
  Mapping(const uint8_t* data, uint64_t size, dev_t dev, int32_t producer_fd)
      : data(data), size(size), dev(dev), producer_fd(producer_fd) {}
  ~Mapping() {
    if (munmap(const_cast<uint8_t*>(data), size) != 0) {
      FERRY_LOG(ERROR) << "shm transport: munmap: " << std::strerror(errno);
    }
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  const uint8_t* const data;
  const uint64_t size;
  const dev_t dev;  // with the inode, identifies the memfd
  const int32_t producer_fd;

  // True if `pid` still has this memfd open as `producer_fd`: one stat of
  // /proc/<pid>/fd/<fd> (~6 µs), no open.
  bool HeldBy(pid_t pid, uint64_t inode) const {
    const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(producer_fd);
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return false;
    return static_cast<uint64_t>(st.st_ino) == inode && st.st_dev == dev;
  }
};

struct ShmTransport::ProducerHandle {
  explicit ProducerHandle(int pidfd) : pidfd(pidfd) {}
  ~ProducerHandle() { close(pidfd); }
  ProducerHandle(const ProducerHandle&) = delete;
  ProducerHandle& operator=(const ProducerHandle&) = delete;

  // A pidfd turns readable when its process exits; it never names another
  // process, whatever happens to the pid.
  bool Exited() const {
    pollfd p{pidfd, POLLIN, 0};
    while (true) {
      const int r = poll(&p, 1, 0);
      if (r >= 0) return r > 0;
      if (errno != EINTR) return true;
    }
  }

  const int pidfd;
};

struct ShmTransport::ParsedItem {
  size_t index = 0;
  ShmEndpoint endpoint;
  Kind kind = Kind::kVm;
  int32_t fd = -1;
  uint64_t inode = 0;
  uint64_t offset = 0;   // ARENA: in the block
  uint64_t address = 0;  // VM: in the producer
  uint64_t length = 0;
  void* dst = nullptr;

  std::string Where() const {
    return "shm transport: item " + std::to_string(index) + " from " + ProducerName(endpoint);
  }
};

ShmTransport::ShmTransport(ShmTransportOptions options)
    : options_(options), arena_(options.arena != nullptr ? *options.arena : ShmArena::Global()) {}

ShmTransport::~ShmTransport() {
  std::thread sweeper;
  bool ours = false;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    sweeper = std::move(sweeper_);
    ours = sweeper_pid_ == getpid();
  }
  sweeper_cv_.notify_all();
  if (sweeper.joinable()) {
    if (ours) {
      sweeper.join();
    } else {
      sweeper.detach();  // inherited through fork(): that thread does not exist here
    }
  }
  // Cached mappings unmap with the cache.
}

void ShmTransport::StartSweeperLocked() {
  if (stopping_ || options_.sweep_interval.count() <= 0) return;
  if (sweeper_.joinable() && sweeper_pid_ == getpid()) return;
  if (sweeper_.joinable()) sweeper_.detach();  // the parent's, before a fork()
  sweeper_pid_ = getpid();
  sweeper_ = std::thread([this] { SweeperLoop(); });
}

void ShmTransport::SweeperLoop() {
  MutexLock lock(mu_);
  while (!stopping_) {
    sweeper_cv_.wait_for(lock.native(), options_.sweep_interval);
    if (stopping_) break;
    lock.native().unlock();
    MaybeSweep();
    lock.native().lock();
  }
}

StatusOr<ExportedBuffers> ShmTransport::Export(const std::vector<BufferView>& buffers) {
  ExportedBuffers out;
  {
    MutexLock lock(mu_);
    if (self_pid_ != getpid()) {  // first call, or we are a fork()ed child
      FERRY_ASSIGN_OR_RETURN(ShmEndpoint self, ShmEndpoint::Self());
      self_endpoint_ = self.Encode();
      self_pid_ = self.pid;
    }
    out.endpoint = self_endpoint_;
  }
  out.descriptors.reserve(buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    const BufferView& b = buffers[i];
    if (b.nbytes == 0) {
      out.descriptors.push_back(VmDescriptor(0, 0));
      continue;
    }
    if (b.data == nullptr) {
      return Status::InvalidArgument("shm transport: buffer " + std::to_string(i) + " has " +
                                     std::to_string(b.nbytes) + " bytes at a null address");
    }
    if (std::optional<ShmArena::Block> block = arena_.Find(b.data)) {
      const uint64_t offset = static_cast<uint64_t>(static_cast<const uint8_t*>(b.data) -
                                                    static_cast<const uint8_t*>(block->base));
      if (b.nbytes > block->capacity - offset) {
        return Status::InvalidArgument("shm transport: buffer " + std::to_string(i) + " (" +
                                       std::to_string(b.nbytes) + " bytes at offset " + std::to_string(offset) +
                                       ") runs past its " + std::to_string(block->capacity) + "-byte arena block");
      }
      out.descriptors.push_back(ArenaDescriptor(block->fd, block->inode, offset, b.nbytes));
    } else {
      out.descriptors.push_back(VmDescriptor(reinterpret_cast<uint64_t>(b.data), b.nbytes));
    }
  }
  return out;
}

Status ShmTransport::Pull(std::span<const PullItem> items, Deadline deadline) {
  if (items.empty()) return Status::Ok();
  if (options_.sweep_interval.count() <= 0) MaybeSweep();  // else the sweeper thread does

  // Check every item before copying any.
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
        return Status::FailedPrecondition(
            "shm transport: item " + std::to_string(i) + " names a process on another host (boot id " +
            ep->boot_id + ", this host " + BootId() + "); shm only moves bytes within one host: use 'nixl'");
      }
      p.endpoint = std::move(*ep);
    }
    last_endpoint = &item.endpoint;

    const std::string_view d = item.descriptor;
    if (d.size() < kHeaderBytes || std::memcmp(d.data(), kMagic, sizeof(kMagic)) != 0) {
      return Status::InvalidArgument("shm transport: item " + std::to_string(i) + ": malformed descriptor (" +
                                     std::to_string(d.size()) + " bytes, bad header)");
    }
    p.kind = static_cast<Kind>(d[4]);
    size_t pos = kHeaderBytes;
    if (p.kind == Kind::kArena && d.size() == kArenaDescriptorBytes) {
      p.fd = Get<int32_t>(d, &pos);
      p.inode = Get<uint64_t>(d, &pos);
      p.offset = Get<uint64_t>(d, &pos);
      p.length = Get<uint64_t>(d, &pos);
      if (p.fd < 0 || p.offset + p.length < p.offset) {
        return Status::InvalidArgument("shm transport: item " + std::to_string(i) + ": malformed arena descriptor");
      }
    } else if (p.kind == Kind::kVm && d.size() == kVmDescriptorBytes) {
      p.address = Get<uint64_t>(d, &pos);
      p.length = Get<uint64_t>(d, &pos);
      if (p.address + p.length < p.address || (p.length > 0 && p.address == 0)) {
        return Status::InvalidArgument("shm transport: item " + std::to_string(i) + ": malformed vm descriptor");
      }
    } else {
      return Status::InvalidArgument("shm transport: item " + std::to_string(i) + ": malformed descriptor (kind " +
                                     std::to_string(static_cast<int>(d[4])) + ", " + std::to_string(d.size()) +
                                     " bytes)");
    }
    if (item.dst.nbytes != p.length) {
      return Status::InvalidArgument("shm transport: item " + std::to_string(i) + ": destination holds " +
                                     std::to_string(item.dst.nbytes) + " bytes, the exported buffer " +
                                     std::to_string(p.length));
    }
    if (p.length > 0 && item.dst.data == nullptr) {
      return Status::InvalidArgument("shm transport: item " + std::to_string(i) + ": null destination");
    }
    p.dst = item.dst.data;
  }

  uint64_t arena_items = 0, vm_items = 0, arena_bytes = 0, vm_bytes = 0;
  for (const ParsedItem& p : parsed) {
    if (deadline.Expired()) {
      return Status::DeadlineExceeded("shm transport: pull of " + std::to_string(items.size()) +
                                      " items passed its deadline before item " + std::to_string(p.index));
    }
    if (p.length == 0) continue;
    Status s = p.kind == Kind::kArena ? PullArena(p, deadline) : PullVm(p, deadline);
    if (!s.ok()) {
      if (s.code() == StatusCode::kUnavailable && !ProducerAlive(p.endpoint.pid, p.endpoint.start_time)) {
        DropProducer(p.endpoint.pid, p.endpoint.start_time);
        return ProducerDied(p.endpoint).WithContext("item " + std::to_string(p.index));
      }
      return s;
    }
    if (p.kind == Kind::kArena) {
      ++arena_items;
      arena_bytes += p.length;
    } else {
      ++vm_items;
      vm_bytes += p.length;
    }
  }

  // A producer that exited (or was killed) mid-copy may have left torn bytes
  // behind (ARENA mappings outlive it): check each one once, after the copy.
  std::vector<std::pair<pid_t, uint64_t>> producers;
  for (const ParsedItem& p : parsed) producers.emplace_back(p.endpoint.pid, p.endpoint.start_time);
  std::sort(producers.begin(), producers.end());
  producers.erase(std::unique(producers.begin(), producers.end()), producers.end());
  for (const auto& [pid, start] : producers) {
    if (!ProducerAlive(pid, start)) {
      DropProducer(pid, start);
      ShmEndpoint ep;
      ep.pid = pid;
      return ProducerDied(ep);
    }
  }

  MutexLock lock(mu_);
  stats_.arena_items += arena_items;
  stats_.vm_items += vm_items;
  stats_.arena_bytes += arena_bytes;
  stats_.vm_bytes += vm_bytes;
  return Status::Ok();
}

Status ShmTransport::PullArena(const ParsedItem& item, Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(std::shared_ptr<const Mapping> mapping, GetMapping(item));
  if (item.offset > mapping->size || item.length > mapping->size - item.offset) {
    return Status::InvalidArgument(item.Where() + ": bytes [" + std::to_string(item.offset) + ", +" +
                                   std::to_string(item.length) + ") run past the " + std::to_string(mapping->size) +
                                   "-byte block");
  }
  const bool streaming = item.length >= kStreamingBytes;
  const uint8_t* src = mapping->data + item.offset;
  uint8_t* dst = static_cast<uint8_t*>(item.dst);
  for (uint64_t done = 0; done < item.length;) {
    if (deadline.Expired()) {
      return Status::DeadlineExceeded(item.Where() + ": deadline passed after " + std::to_string(done) + " of " +
                                      std::to_string(item.length) + " bytes");
    }
    const uint64_t n = std::min(kChunkBytes, item.length - done);
    CopyPiece(dst + done, src + done, n, streaming);
    done += n;
  }
  return Status::Ok();
}

Status ShmTransport::PullVm(const ParsedItem& item, Deadline deadline) {
  uint8_t* dst = static_cast<uint8_t*>(item.dst);
  for (uint64_t done = 0; done < item.length;) {
    if (deadline.Expired()) {
      return Status::DeadlineExceeded(item.Where() + ": deadline passed after " + std::to_string(done) + " of " +
                                      std::to_string(item.length) + " bytes");
    }
    const uint64_t n = std::min(kChunkBytes, item.length - done);
    struct iovec local {dst + done, n};
    struct iovec remote {reinterpret_cast<void*>(item.address + done), n};
    const ssize_t r = process_vm_readv(item.endpoint.pid, &local, 1, &remote, 1, 0);
    if (r > 0) {
      done += static_cast<uint64_t>(r);  // a short read stops at an unmapped page; the next call says why
      continue;
    }
    const int err = r == 0 ? EFAULT : errno;
    if (err == EINTR) continue;
    const std::string range = "[0x" + [](uint64_t v) {
      char buf[32];
      auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), v, 16);
      return std::string(buf, p);
    }(item.address + done) + ", +" + std::to_string(item.length - done) + ")";
    if (err == ESRCH) return Status::Unavailable(item.Where() + ": the process is gone");
    if (err == EFAULT) {
      return Status::Unavailable(item.Where() + ": it no longer maps " + range + " (freed?) or the destination is bad");
    }
    if (err == EPERM || err == EACCES) {
      return Status::PermissionDenied(item.Where() + ": process_vm_readv not permitted (" + std::strerror(err) +
                                      "); producer and consumer must run as the same user");
    }
    if (err == ENOMEM) return Status::ResourceExhausted(item.Where() + ": process_vm_readv: " + std::strerror(err));
    return Status::Aborted(item.Where() + ": process_vm_readv of " + range + ": " + std::strerror(err));
  }
  return Status::Ok();
}

StatusOr<std::shared_ptr<const ShmTransport::Mapping>> ShmTransport::GetMapping(const ParsedItem& item) {
  const MappingKey key{item.endpoint.pid, item.endpoint.start_time, item.inode};
  const std::string path = "/proc/" + std::to_string(item.endpoint.pid) + "/fd/" + std::to_string(item.fd);
  std::shared_ptr<const Mapping> cached;
  {
    MutexLock lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      cached = it->second.mapping;
      lru_.splice(lru_.begin(), lru_, it->second.lru);
    }
  }
  if (cached != nullptr) {
    // No check that the producer still holds the block: that costs a stat of
    // /proc/<pid>/fd/<fd> (~6 µs, more than copying 64 KiB). The sweep does
    // it; producer death is caught after the copy.
    MutexLock lock(mu_);
    ++stats_.map_hits;
    return cached;
  }

  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return OpenError(path, errno, "this buffer");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return Status::Aborted(item.Where() + ": fstat " + path + ": " + std::strerror(err));
  }
  if (static_cast<uint64_t>(st.st_ino) != item.inode) {
    close(fd);
    return Status::Unavailable(item.Where() + ": " + path + " is no longer the exported block (inode " +
                               std::to_string(st.st_ino) + ", expected " + std::to_string(item.inode) +
                               "): the producer freed it");
  }
  // Map only arena memfds, never another file a descriptor happens to name.
  char link[128];
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = readlink(self.c_str(), link, sizeof(link) - 1);
  const std::string want = std::string("/memfd:") + kArenaMemfdName;
  if (n < static_cast<ssize_t>(want.size()) || std::string_view(link, want.size()) != want) {
    close(fd);
    return Status::InvalidArgument(item.Where() + ": " + path + " is not a ferry arena block");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {
    close(fd);
    return Status::InvalidArgument(item.Where() + ": " + path + " is empty");
  }
  void* data = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  const int map_err = errno;
  close(fd);  // the mapping keeps the memfd alive
  if (data == MAP_FAILED) {
    const std::string msg = item.Where() + ": mmap of " + std::to_string(size) + " bytes: " + std::strerror(map_err);
    if (map_err == ENOMEM) return Status::ResourceExhausted(msg);
    return Status::Aborted(msg);
  }
  auto mapping = std::make_shared<const Mapping>(static_cast<const uint8_t*>(data), size, st.st_dev, item.fd);

  std::vector<std::shared_ptr<const Mapping>> dropped;  // unmapped outside mu_
  MutexLock lock(mu_);
  ++stats_.map_misses;
  auto it = cache_.find(key);
  if (it != cache_.end()) {  // another Pull mapped it meanwhile: share theirs
    dropped.push_back(std::move(mapping));
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second.mapping;
  }
  if (size > options_.map_cache_bytes) return mapping;  // too big to keep
  lru_.push_front(key);
  cache_.emplace(key, CacheEntry{mapping, lru_.begin()});
  mapped_bytes_ += size;
  StartSweeperLocked();
  while (mapped_bytes_ > options_.map_cache_bytes && lru_.back() != key) EvictLocked(lru_.back(), &dropped);
  return mapping;
}

bool ShmTransport::ProducerAlive(pid_t pid, uint64_t start_time) {
  const auto key = std::make_pair(pid, start_time);
  std::shared_ptr<const ProducerHandle> handle;
  {
    MutexLock lock(mu_);
    auto it = producers_.find(key);
    if (it != producers_.end()) handle = it->second;
  }
  if (handle == nullptr) {
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
      // ESRCH: gone. Anything else (no descriptors left): ask /proc.
      return errno == ESRCH ? false : SameLiveProcess(pid, start_time);
    }
    // The pidfd names whatever process has `pid` now; it is the producer if
    // the start time matches (the producer existed before this call, so
    // the pid cannot have passed to another process in between).
    handle = std::make_shared<const ProducerHandle>(pidfd);
    if (!SameLiveProcess(pid, start_time)) return false;
    std::vector<std::shared_ptr<const ProducerHandle>> dropped;  // closed after the lock
    MutexLock lock(mu_);
    auto [it, inserted] = producers_.emplace(key, handle);
    if (!inserted) handle = it->second;
    while (producers_.size() > kMaxProducerHandles) {
      auto victim = producers_.begin();
      if (victim->first == key) ++victim;
      dropped.push_back(std::move(victim->second));
      producers_.erase(victim);
    }
  }
  return !handle->Exited();
}

void ShmTransport::EvictLocked(MappingKey key, std::vector<std::shared_ptr<const Mapping>>* dropped) {
  auto it = cache_.find(key);
  if (it == cache_.end()) return;
  mapped_bytes_ -= it->second.mapping->size;
  dropped->push_back(std::move(it->second.mapping));
  lru_.erase(it->second.lru);
  cache_.erase(it);
  ++stats_.evictions;
}

void ShmTransport::DropProducer(pid_t pid, uint64_t start_time) {
  std::vector<std::shared_ptr<const Mapping>> dropped;  // destroyed after the lock: unmaps outside it
  std::shared_ptr<const ProducerHandle> handle;  // closed after the lock
  MutexLock lock(mu_);
  auto p = producers_.find(std::make_pair(pid, start_time));
  if (p != producers_.end()) {
    handle = std::move(p->second);
    producers_.erase(p);
  }
  auto it = cache_.lower_bound(MappingKey{pid, start_time, 0});
  while (it != cache_.end() && std::get<0>(it->first) == pid && std::get<1>(it->first) == start_time) {
    const MappingKey key = (it++)->first;
    EvictLocked(key, &dropped);
  }
}

void ShmTransport::MaybeSweep() {
  struct Check {
    MappingKey key;
    std::shared_ptr<const Mapping> mapping;
  };
  std::vector<Check> checks;
  std::vector<std::pair<pid_t, uint64_t>> producers;
  {
    MutexLock lock(mu_);
    const auto now = Clock::now();
    if (sweeping_ || now < next_sweep_ || (cache_.empty() && producers_.empty())) return;
    sweeping_ = true;
    next_sweep_ = now + options_.sweep_interval;
    for (const auto& [key, entry] : cache_) {
      checks.push_back({key, entry.mapping});
      producers.emplace_back(std::get<0>(key), std::get<1>(key));
    }
    for (const auto& [key, handle] : producers_) producers.push_back(key);
  }
  // Every producer once (a pidfd poll), then one stat of /proc/<pid>/fd/<fd>
  // per block of a live producer: does it still hold the block?
  std::sort(producers.begin(), producers.end());
  producers.erase(std::unique(producers.begin(), producers.end()), producers.end());
  std::vector<std::pair<pid_t, uint64_t>> dead;
  for (const auto& [pid, start] : producers) {
    if (!ProducerAlive(pid, start)) {
      DropProducer(pid, start);
      dead.emplace_back(pid, start);
    }
  }
  std::vector<Check> stale;
  for (Check& c : checks) {
    const auto producer = std::make_pair(std::get<0>(c.key), std::get<1>(c.key));
    if (std::binary_search(dead.begin(), dead.end(), producer)) continue;  // already dropped
    if (!c.mapping->HeldBy(producer.first, std::get<2>(c.key))) stale.push_back(std::move(c));
  }
  checks.clear();
  std::vector<std::shared_ptr<const Mapping>> dropped;  // destroyed after the lock: unmaps outside it
  MutexLock lock(mu_);
  for (const Check& c : stale) {
    auto it = cache_.find(c.key);
    if (it != cache_.end() && it->second.mapping == c.mapping) EvictLocked(c.key, &dropped);
  }
  sweeping_ = false;
}

ShmTransport::Stats ShmTransport::GetStats() const {
  MutexLock lock(mu_);
  Stats s = stats_;
  s.cached_mappings = cache_.size();
  s.mapped_bytes = mapped_bytes_;
  return s;
}

void ShmTransport::DropMappings() {
  std::vector<std::shared_ptr<const Mapping>> dropped;  // destroyed after the lock: unmaps outside it
  MutexLock lock(mu_);
  while (!lru_.empty()) EvictLocked(lru_.back(), &dropped);
}

}  // namespace ferry::transport
