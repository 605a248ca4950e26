#include "ferry/transport/shm/shm_mapping_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "ferry/common/logging.h"
#include "ferry/transport/shm/shm_arena.h"

namespace ferry::transport::shm_internal {
namespace {

Status OpenError(const std::string& path, int err, const std::string& what) {
  if (err == ENOENT || err == ESRCH) {
    return Status::Unavailable("shm transport: " + path +
                               " is gone: the producer exited or freed " + what);
  }
  if (err == EACCES || err == EPERM) {
    return Status::PermissionDenied("shm transport: cannot open " + path + " (" +
                                    std::strerror(err) +
                                    "); producer and consumer must run as the same user");
  }
  if (err == EMFILE || err == ENFILE || err == ENOMEM) {
    return Status::ResourceExhausted("shm transport: open " + path + ": " + std::strerror(err));
  }
  return Status::Aborted("shm transport: open " + path + ": " + std::strerror(err));
}

}  // namespace

// ---- Mapping ----------------------------------------------------------------

Mapping::~Mapping() {
  if (munmap(const_cast<uint8_t*>(data), size) != 0) {
    FERRY_LOG(ERROR) << "shm transport: munmap: " << std::strerror(errno);
  }
}

bool Mapping::HeldBy(pid_t pid, uint64_t inode) const {
  const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(producer_fd);
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  return static_cast<uint64_t>(st.st_ino) == inode && st.st_dev == dev;
}

// ---- Lifecycle and the sweeper ------------------------------------------------

MappingCache::MappingCache(uint64_t max_bytes, std::chrono::milliseconds sweep_interval,
                           ProducerTable* producers)
    : max_bytes_(max_bytes), sweep_interval_(sweep_interval), producers_(*producers) {}

MappingCache::~MappingCache() {
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
  // Cached mappings unmap with cache_.
}

void MappingCache::StartSweeperLocked() {
  if (stopping_ || sweep_interval_.count() <= 0) return;
  if (sweeper_.joinable() && sweeper_pid_ == getpid()) return;
  if (sweeper_.joinable()) sweeper_.detach();  // the parent's, before a fork()
  sweeper_pid_ = getpid();
  sweeper_ = std::thread([this] { SweeperLoop(); });
}

void MappingCache::SweeperLoop() {
  MutexLock lock(mu_);
  while (!stopping_) {
    sweeper_cv_.wait_for(lock.native(), sweep_interval_);
    if (stopping_) break;
    lock.Unlock();
    MaybeSweep();
    lock.Lock();
  }
}

// ---- Lookups ------------------------------------------------------------------

StatusOr<std::shared_ptr<const Mapping>> MappingCache::Get(const ParsedItem& item) {
  const Key key{item.endpoint.pid, item.endpoint.start_time, item.inode};
  const std::string path = "/proc/" + std::to_string(item.endpoint.pid) + "/fd/" +
                           std::to_string(item.fd);
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
    ++stats_.hits;
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
    return Status::Unavailable(item.Where() + ": " + path +
                               " is no longer the exported block (inode " +
                               std::to_string(st.st_ino) + ", expected " +
                               std::to_string(item.inode) + "): the producer freed it");
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
    const std::string msg = item.Where() + ": mmap of " + std::to_string(size) +
                            " bytes: " + std::strerror(map_err);
    if (map_err == ENOMEM) return Status::ResourceExhausted(msg);
    return Status::Aborted(msg);
  }
  auto mapping = std::make_shared<const Mapping>(static_cast<const uint8_t*>(data), size, st.st_dev,
                                                 item.fd);

  std::vector<std::shared_ptr<const Mapping>> dropped;  // unmapped outside mu_
  MutexLock lock(mu_);
  ++stats_.misses;
  auto it = cache_.find(key);
  if (it != cache_.end()) {  // another Get mapped it meanwhile: share theirs
    dropped.push_back(std::move(mapping));
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second.mapping;
  }
  if (size > max_bytes_) return mapping;  // too big to keep
  lru_.push_front(key);
  cache_.emplace(key, Entry{mapping, lru_.begin()});
  mapped_bytes_ += size;
  StartSweeperLocked();
  while (mapped_bytes_ > max_bytes_ && lru_.back() != key) EvictLocked(lru_.back(), &dropped);
  return mapping;
}

// ---- Eviction -----------------------------------------------------------------

void MappingCache::EvictLocked(Key key, std::vector<std::shared_ptr<const Mapping>>* dropped) {
  auto it = cache_.find(key);
  if (it == cache_.end()) return;
  mapped_bytes_ -= it->second.mapping->size;
  dropped->push_back(std::move(it->second.mapping));
  lru_.erase(it->second.lru);
  cache_.erase(it);
  ++stats_.evictions;
}

void MappingCache::DropProducer(pid_t pid, uint64_t start_time) {
  producers_.Forget(pid, start_time);
  std::vector<std::shared_ptr<const Mapping>>
      dropped;  // destroyed after the lock: unmaps outside it
  MutexLock lock(mu_);
  auto it = cache_.lower_bound(Key{pid, start_time, 0});
  while (it != cache_.end() && std::get<0>(it->first) == pid &&
         std::get<1>(it->first) == start_time) {
    const Key key = (it++)->first;
    EvictLocked(key, &dropped);
  }
}

void MappingCache::MaybeSweep() {
  struct Check {
    Key key;
    std::shared_ptr<const Mapping> mapping;
  };
  std::vector<Check> checks;
  std::vector<ProducerId> producers;
  {
    MutexLock lock(mu_);
    const auto now = Clock::now();
    if (sweeping_ || now < next_sweep_) return;
    producers = producers_.Known();
    if (cache_.empty() && producers.empty()) return;
    sweeping_ = true;
    next_sweep_ = now + sweep_interval_;
    for (const auto& [key, entry] : cache_) {
      checks.push_back({key, entry.mapping});
      producers.emplace_back(std::get<0>(key), std::get<1>(key));
    }
  }
  // Every producer once (a pidfd poll), then one stat of /proc/<pid>/fd/<fd>
  // per block of a live producer: does it still hold the block?
  std::sort(producers.begin(), producers.end());
  producers.erase(std::unique(producers.begin(), producers.end()), producers.end());
  std::vector<ProducerId> dead;
  for (const auto& [pid, start] : producers) {
    if (!producers_.Alive(pid, start)) {
      DropProducer(pid, start);
      dead.emplace_back(pid, start);
    }
  }
  std::vector<Check> stale;
  for (Check& c : checks) {
    const ProducerId producer(std::get<0>(c.key), std::get<1>(c.key));
    if (std::binary_search(dead.begin(), dead.end(), producer)) continue;  // already dropped
    if (!c.mapping->HeldBy(producer.first, std::get<2>(c.key))) stale.push_back(std::move(c));
  }
  checks.clear();
  std::vector<std::shared_ptr<const Mapping>>
      dropped;  // destroyed after the lock: unmaps outside it
  MutexLock lock(mu_);
  for (const Check& c : stale) {
    auto it = cache_.find(c.key);
    if (it != cache_.end() && it->second.mapping == c.mapping) EvictLocked(c.key, &dropped);
  }
  sweeping_ = false;
}

void MappingCache::DropAll() {
  std::vector<std::shared_ptr<const Mapping>>
      dropped;  // destroyed after the lock: unmaps outside it
  MutexLock lock(mu_);
  while (!lru_.empty()) EvictLocked(lru_.back(), &dropped);
}

MappingCache::Stats MappingCache::GetStats() const {
  MutexLock lock(mu_);
  Stats s = stats_;
  s.cached_mappings = cache_.size();
  s.mapped_bytes = mapped_bytes_;
  return s;
}

}  // namespace ferry::transport::shm_internal
