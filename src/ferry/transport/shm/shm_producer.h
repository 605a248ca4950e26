// Identity and liveness of processes on this host, internal to the shm
// backend: the host's boot id, a process's state and start time from
// /proc/<pid>/stat, and ProducerTable, which answers "is this producer still
// the same live process?" with a poll of a cached pidfd (~0.5 µs) instead of
// a read of /proc (~14 µs).
//
// A producer is named by (pid, start time), so a reused pid is never taken
// for it. A pidfd, once opened for the right process, names that process
// whatever later happens to the pid.
//
// THREAD CONTRACT: the free functions are thread-safe. ProducerTable is
// thread-safe; it calls nothing outside itself, so a caller may hold its own
// lock while calling it, and closes pidfds outside its lock.
//
//   ProducerTable producers;
//   if (!producers.Alive(ep.pid, ep.start_time)) {
//     producers.Forget(ep.pid, ep.start_time);  // and drop what it exported
//     return Status::Unavailable("the producer process died");
//   }
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ferry/common/thread_annotations.h"
#include "ferry/status.h"

namespace ferry::transport::shm_internal {

// This host, as HostId() names it (the boot id, or the cluster node).
std::string BootId();

struct ProcState {
  char state = '?';
  uint64_t start_time = 0;  // clock ticks after boot (field 22)
};

// Parses /proc/<pid>/stat (or /proc/self/stat when pid == 0). NotFound if
// the process does not exist.
StatusOr<ProcState> ReadProcStat(pid_t pid);

// True if `pid` is the live (not zombie) process that started at
// `start_time`, by /proc alone.
bool SameLiveProcess(pid_t pid, uint64_t start_time);

// (pid, start time): one process, for as long as the host runs.
using ProducerId = std::pair<pid_t, uint64_t>;

// Pidfds of the producers a transport pulled from, keyed by ProducerId.
// Dead producers' are closed when their death is noticed (Forget); beyond
// kMaxHandles arbitrary ones are closed (they are reopened on demand).
class ProducerTable {
 public:
  ProducerTable();
  ~ProducerTable();
  ProducerTable(const ProducerTable&) = delete;
  ProducerTable& operator=(const ProducerTable&) = delete;

  // True if `pid` is still the live process that started at `start_time`.
  // Opens and keeps a pidfd on first use.
  bool Alive(pid_t pid, uint64_t start_time) FERRY_EXCLUDES(mu_);
  // Closes the producer's pidfd, if one is kept.
  void Forget(pid_t pid, uint64_t start_time) FERRY_EXCLUDES(mu_);
  // The producers with a kept pidfd, sorted.
  std::vector<ProducerId> Known() const FERRY_EXCLUDES(mu_);

 private:
  class Handle;  // one pidfd
  static constexpr size_t kMaxHandles = 256;

  mutable Mutex mu_;
  std::map<ProducerId, std::shared_ptr<const Handle>> handles_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::transport::shm_internal
