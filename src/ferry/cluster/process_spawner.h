// Starting and ending worker processes, with no orphans.
//
// Spawn() starts a child with posix_spawn, handing it the read end of a
// liveness pipe whose write end only this process holds: when this process
// dies for any reason (SIGKILL included) every child sees EOF on it and
// exits (WorkerGuards, below, watches it; a parent-death signal is the
// second line). Each child comes with a pidfd, so its exit can be awaited
// without sleeping or reaping anyone else's children.
//
// Thread contract: a ProcessSpawner is thread-safe (it holds only the pipe).
// ChildProcess is a value owned by one thread at a time.
//
//   ProcessSpawner spawner;
//   FERRY_ASSIGN_OR_RETURN(ChildProcess child, spawner.Spawn(argv, {{"K", "V"}}));
//   KillAndReap(child, Deadline::After(std::chrono::seconds(5)));
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/status.h"

namespace ferry::cluster {

struct ChildProcess {
  pid_t pid = -1;
  int pidfd = -1;  // owned; readable once the process has exited
};

// Where a child's stdout and stderr go: these fds, or (-1) this process's.
struct ChildStdio {
  int stdout_fd = -1;
  int stderr_fd = -1;
};

class ProcessSpawner {
 public:
  // The environment variable through which a child learns its liveness fd.
  static constexpr const char* kLivenessFdEnv = "FERRY_LIVENESS_FD";
  static constexpr const char* kParentPidEnv = "FERRY_PARENT_PID";

  ProcessSpawner();
  ~ProcessSpawner();
  ProcessSpawner(const ProcessSpawner&) = delete;
  ProcessSpawner& operator=(const ProcessSpawner&) = delete;

  // Starts argv[0] (a path) with this process's environment plus `env`.
  StatusOr<ChildProcess> Spawn(const std::vector<std::string>& argv,
                               const std::map<std::string, std::string>& env,
                               ChildStdio stdio = {});

 private:
  int liveness_read_ = -1;
  int liveness_write_ = -1;
};

// Reaps `child` if it has exited; returns its wait status, or -1 if running.
int TryReap(ChildProcess& child);
// SIGKILLs `child` and waits (on its pidfd) until it is gone, up to
// `deadline`. Closes the pidfd. Returns DeadlineExceeded if it outlived it.
Status KillAndReap(ChildProcess& child, Deadline deadline);
// "exited with code 3" / "was killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

// In a worker: exit when the parent dies. Sets the parent-death signal,
// exits at once if the parent is already gone, and starts a thread that
// exits the process on EOF of the liveness pipe. No-op outside a ferry
// worker (the environment variables are absent).
void InstallWorkerGuards();

}  // namespace ferry::cluster
