#include "ferry/transport/shm/shm_producer.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>

#include "ferry/common/host_id.h"
#include "ferry/common/logging.h"

namespace ferry::transport::shm_internal {
namespace {

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

}  // namespace

std::string BootId() { return HostId(); }

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

bool SameLiveProcess(pid_t pid, uint64_t start_time) {
  auto ps = ReadProcStat(pid);
  return ps.ok() && ps->start_time == start_time && ps->state != 'Z' && ps->state != 'X';
}

// ---- ProducerTable ----------------------------------------------------------

class ProducerTable::Handle {
 public:
  explicit Handle(int pidfd) : pidfd_(pidfd) {}
  ~Handle() { close(pidfd_); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  // A pidfd turns readable when its process exits; it never names another
  // process, whatever happens to the pid.
  bool Exited() const {
    pollfd p{pidfd_, POLLIN, 0};
    while (true) {
      const int r = poll(&p, 1, 0);
      if (r >= 0) return r > 0;
      if (errno != EINTR) return true;
    }
  }

 private:
  const int pidfd_;
};

ProducerTable::ProducerTable() = default;
ProducerTable::~ProducerTable() = default;

bool ProducerTable::Alive(pid_t pid, uint64_t start_time) {
  const ProducerId key(pid, start_time);
  std::shared_ptr<const Handle> handle;
  {
    MutexLock lock(mu_);
    auto it = handles_.find(key);
    if (it != handles_.end()) handle = it->second;
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
    handle = std::make_shared<const Handle>(pidfd);
    if (!SameLiveProcess(pid, start_time)) return false;
    std::vector<std::shared_ptr<const Handle>> dropped;  // closed after the lock
    MutexLock lock(mu_);
    auto [it, inserted] = handles_.emplace(key, handle);
    if (!inserted) handle = it->second;
    while (handles_.size() > kMaxHandles) {
      auto victim = handles_.begin();
      if (victim->first == key) ++victim;
      dropped.push_back(std::move(victim->second));
      handles_.erase(victim);
    }
  }
  return !handle->Exited();
}

void ProducerTable::Forget(pid_t pid, uint64_t start_time) {
  std::shared_ptr<const Handle> handle;  // closed after the lock
  MutexLock lock(mu_);
  auto it = handles_.find(ProducerId(pid, start_time));
  if (it != handles_.end()) {
    handle = std::move(it->second);
    handles_.erase(it);
  }
}

std::vector<ProducerId> ProducerTable::Known() const {
  std::vector<ProducerId> out;
  MutexLock lock(mu_);
  out.reserve(handles_.size());
  for (const auto& [key, handle] : handles_) out.push_back(key);
  return out;
}

}  // namespace ferry::transport::shm_internal
