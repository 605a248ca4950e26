#include "ferry/transport/shm/shm_arena.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"

// GCC ignores the annotations; clang cannot follow a lock taken in one fork
// handler and released in another.
#if defined(__clang__)
#define FERRY_SHM_NO_THREAD_SAFETY_ANALYSIS __attribute__((no_thread_safety_analysis))
#else
#define FERRY_SHM_NO_THREAD_SAFETY_ANALYSIS
#endif

namespace ferry::transport {
namespace {

// Larger requests cannot be met on any machine we run on; refusing them early
// keeps the size arithmetic free of overflow.
constexpr uint64_t kMaxBlockBytes = uint64_t{1} << 46;
constexpr uint64_t kSmallClassLimit = 4 * ShmArena::kPageBytes;

void ReleaseBlock(void* base, int fd, uint64_t capacity) {
  if (munmap(base, capacity) != 0) {
    FERRY_LOG(ERROR) << "munmap of a shm arena block: " << std::strerror(errno);
  }
  close(fd);
}

Status ErrnoStatus(const std::string& what, int err) {
  std::string msg = "shm arena: " + what + ": " + std::strerror(err);
  if (err == ENOMEM || err == ENOSPC || err == EMFILE || err == ENFILE) {
    return Status::ResourceExhausted(std::move(msg));
  }
  return Status::Internal(std::move(msg));
}

}  // namespace

// Every live arena, so that one set of pthread_atfork handlers can hold all
// their locks across fork() and reset them in the child. Lock order: the
// registry's mutex, then each arena's.
struct ArenaForkRegistry {
  static ArenaForkRegistry& Get() {
    static ArenaForkRegistry* registry = new ArenaForkRegistry;  // never destroyed
    return *registry;
  }

  void Add(ShmArena* arena) {
    static std::once_flag registered;
    std::call_once(registered, [] { pthread_atfork(&Prepare, &Parent, &Child); });
    std::lock_guard<std::mutex> lock(mu);
    arenas.push_back(arena);
  }

  void Remove(ShmArena* arena) {
    std::lock_guard<std::mutex> lock(mu);
    arenas.erase(std::remove(arenas.begin(), arenas.end(), arena), arenas.end());
  }

  static void Prepare() FERRY_SHM_NO_THREAD_SAFETY_ANALYSIS {
    ArenaForkRegistry& r = Get();
    r.mu.lock();
    for (ShmArena* a : r.arenas) a->LockForFork();
  }
  static void Parent() FERRY_SHM_NO_THREAD_SAFETY_ANALYSIS {
    ArenaForkRegistry& r = Get();
    for (ShmArena* a : r.arenas) a->UnlockInParent();
    r.mu.unlock();
  }
  static void Child() FERRY_SHM_NO_THREAD_SAFETY_ANALYSIS {
    ArenaForkRegistry& r = Get();
    for (ShmArena* a : r.arenas) a->ResetInChild();
    r.mu.unlock();
  }

  std::mutex mu;
  std::vector<ShmArena*> arenas;  // guarded by mu
};

ShmArena::Options ShmArena::OptionsFromEnv() {
  Options o;
  const int64_t pool = EnvInt("FERRY_SHM_ARENA_POOL_BYTES",
                              static_cast<int64_t>(kDefaultMaxPooledBytes));
  o.max_pooled_bytes = pool < 0 ? 0 : static_cast<uint64_t>(pool);
  uint64_t soft = 1024;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    soft = rl.rlim_cur == RLIM_INFINITY ? (uint64_t{1} << 20) : static_cast<uint64_t>(rl.rlim_cur);
  }
  const int64_t fds = EnvInt("FERRY_SHM_ARENA_MAX_FDS", static_cast<int64_t>(soft / 2));
  o.max_fds = fds < 0 ? 0 : static_cast<uint64_t>(fds);
  return o;
}

ShmArena& ShmArena::Global() {
  // Never destroyed: torch frees tensors into it while the process exits.
  static ShmArena* arena = new ShmArena(OptionsFromEnv());
  return *arena;
}

ShmArena::ShmArena(Options options) : options_(options) { ArenaForkRegistry::Get().Add(this); }

ShmArena::~ShmArena() {
  ArenaForkRegistry::Get().Remove(this);
  Trim();
  MutexLock lock(mu_);
  if (!live_.empty()) {
    FERRY_LOG(ERROR) << "shm arena destroyed with " << live_.size() << " live blocks; leaking them";
  }
}

uint64_t ShmArena::SizeClass(uint64_t nbytes) {
  if (nbytes <= kSmallClassLimit) {
    const uint64_t n = nbytes == 0 ? 1 : nbytes;
    return (n + kPageBytes - 1) / kPageBytes * kPageBytes;
  }
  // 2^k < nbytes <= 2^(k+1): steps of 2^k / 4, a whole number of pages
  // because 2^k >= 16 KiB.
  const int k = std::bit_width(nbytes - 1) - 1;
  const uint64_t step = (uint64_t{1} << k) / 4;
  return (nbytes + step - 1) / step * step;
}

StatusOr<void*> ShmArena::Allocate(uint64_t nbytes) {
  if (nbytes > kMaxBlockBytes) {
    return Status::ResourceExhausted("shm arena: " + std::to_string(nbytes) +
                                     " bytes is more than a block may hold");
  }
  const uint64_t capacity = SizeClass(nbytes);
  std::vector<Pooled> evicted;
  bool over_budget = false;
  {
    MutexLock lock(mu_);
    auto it = pool_.find(capacity);
    if (it != pool_.end() && !it->second.empty()) {
      Pooled p = it->second.back();
      it->second.pop_back();
      pooled_bytes_ -= capacity;
      --pooled_blocks_;
      live_[reinterpret_cast<uintptr_t>(p.base)] = p.record;
      live_bytes_ += capacity;
      ++hits_;
      return p.base;
    }
    ++misses_;
    // Stay within the descriptor budget by closing pooled blocks of other
    // classes first.
    while (fds_ >= options_.max_fds) {
      Pooled victim;
      if (!EvictOnePooled(&victim)) break;
      evicted.push_back(victim);
      --fds_;
      ++released_;
    }
    over_budget = fds_ >= options_.max_fds;
    if (!over_budget) ++fds_;  // reserved for the memfd made below
  }
  for (const Pooled& p : evicted) ReleaseBlock(p.base, p.record.fd, p.record.capacity);
  if (over_budget) {
    return Status::ResourceExhausted("shm arena: already holds " +
                                     std::to_string(options_.max_fds) +
                                     " memfds (FERRY_SHM_ARENA_MAX_FDS)");
  }

  auto unreserve = [this] {
    MutexLock lock(mu_);
    --fds_;
  };
  int fd = memfd_create(kArenaMemfdName, MFD_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    unreserve();
    return ErrnoStatus("memfd_create", err);
  }
  struct stat st;
  if (ftruncate(fd, static_cast<off_t>(capacity)) != 0 || fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    unreserve();
    return ErrnoStatus("sizing a " + std::to_string(capacity) + "-byte memfd", err);
  }
  void* base = mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    const int err = errno;
    close(fd);
    unreserve();
    return ErrnoStatus("mmap of a " + std::to_string(capacity) + "-byte memfd", err);
  }
  Record record;
  record.fd = fd;
  record.inode = static_cast<uint64_t>(st.st_ino);
  record.capacity = capacity;
  MutexLock lock(mu_);
  live_[reinterpret_cast<uintptr_t>(base)] = record;
  live_bytes_ += capacity;
  return base;
}

void ShmArena::Free(void* p) {
  if (p == nullptr) return;
  Record record;
  {
    MutexLock lock(mu_);
    auto it = live_.find(reinterpret_cast<uintptr_t>(p));
    FERRY_CHECK(it != live_.end()) << "ShmArena::Free(" << p << "): not a live block of this arena";
    record = it->second;
    live_.erase(it);
    live_bytes_ -= record.capacity;
    if (!record.inherited && pooled_bytes_ + record.capacity <= options_.max_pooled_bytes) {
      pool_[record.capacity].push_back(Pooled{p, record});
      pooled_bytes_ += record.capacity;
      ++pooled_blocks_;
      return;
    }
    --fds_;
    ++released_;
  }
  ReleaseBlock(p, record.fd, record.capacity);
}

std::optional<ShmArena::Block> ShmArena::Find(const void* p) const {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
  MutexLock lock(mu_);
  auto it = live_.upper_bound(addr);
  if (it == live_.begin()) return std::nullopt;
  --it;
  if (addr - it->first >= it->second.capacity) return std::nullopt;
  Block b;
  b.fd = it->second.fd;
  b.inode = it->second.inode;
  b.base = reinterpret_cast<void*>(it->first);
  b.capacity = it->second.capacity;
  return b;
}

void ShmArena::Trim() {
  std::vector<Pooled> all;
  {
    MutexLock lock(mu_);
    for (auto& [capacity, blocks] : pool_) {
      for (const Pooled& p : blocks) all.push_back(p);
    }
    pool_.clear();
    pooled_bytes_ = 0;
    pooled_blocks_ = 0;
    fds_ -= all.size();
    released_ += all.size();
  }
  for (const Pooled& p : all) ReleaseBlock(p.base, p.record.fd, p.record.capacity);
}

ShmArena::Stats ShmArena::GetStats() const {
  MutexLock lock(mu_);
  Stats s;
  s.live_blocks = live_.size();
  s.live_bytes = live_bytes_;
  s.pooled_blocks = pooled_blocks_;
  s.pooled_bytes = pooled_bytes_;
  s.hits = hits_;
  s.misses = misses_;
  s.released_blocks = released_;
  return s;
}

bool ShmArena::EvictOnePooled(Pooled* out) {
  for (auto& [capacity, blocks] : pool_) {
    if (blocks.empty()) continue;
    *out = blocks.back();
    blocks.pop_back();
    pooled_bytes_ -= capacity;
    --pooled_blocks_;
    return true;
  }
  return false;
}

void ShmArena::LockForFork() FERRY_SHM_NO_THREAD_SAFETY_ANALYSIS { mu_.Lock(); }

void ShmArena::UnlockInParent() FERRY_SHM_NO_THREAD_SAFETY_ANALYSIS { mu_.Unlock(); }

void ShmArena::ResetInChild() FERRY_SHM_NO_THREAD_SAFETY_ANALYSIS {
  // The only thread of the child. Pooled blocks belong to the parent, which
  // will hand them out again: drop the child's view of them. Live blocks stay
  // usable (tensors the child inherited) but are never pooled here.
  for (auto& [capacity, blocks] : pool_) {
    for (const Pooled& p : blocks) ReleaseBlock(p.base, p.record.fd, p.record.capacity);
  }
  pool_.clear();
  pooled_bytes_ = 0;
  pooled_blocks_ = 0;
  for (auto& [base, record] : live_) record.inherited = true;
  fds_ = live_.size();  // Allocate calls in flight in the parent are not ours
  mu_.Unlock();
}

}  // namespace ferry::transport
