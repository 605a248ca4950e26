#include "ferry/cluster/process_spawner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"

extern char** environ;

namespace ferry::cluster {
namespace {

constexpr int kChildLivenessFd = 3;

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

Status Errno(const std::string& what) {
  return Status::Internal(what + ": " + std::strerror(errno));
}

}  // namespace

ProcessSpawner::ProcessSpawner() {
  int fds[2];
  FERRY_CHECK(pipe2(fds, O_CLOEXEC) == 0) << std::strerror(errno);
  liveness_read_ = fds[0];
  liveness_write_ = fds[1];
  if (liveness_read_ == kChildLivenessFd) {
    // dup2 onto itself would keep FD_CLOEXEC set; move it out of the way.
    int moved = fcntl(liveness_read_, F_DUPFD_CLOEXEC, kChildLivenessFd + 1);
    FERRY_CHECK(moved >= 0);
    close(liveness_read_);
    liveness_read_ = moved;
  }
}

ProcessSpawner::~ProcessSpawner() {
  if (liveness_read_ >= 0) close(liveness_read_);
  if (liveness_write_ >= 0) close(liveness_write_);
}

StatusOr<ChildProcess> ProcessSpawner::Spawn(const std::vector<std::string>& argv,
                                             const std::map<std::string, std::string>& env,
                                             ChildStdio stdio) {
  if (argv.empty()) return Status::InvalidArgument("empty worker command");
  std::map<std::string, std::string> merged;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq != nullptr) merged[std::string(*e, static_cast<size_t>(eq - *e))] = std::string(eq + 1);
  }
  for (const auto& [k, v] : env) merged[k] = v;
  merged[kLivenessFdEnv] = std::to_string(kChildLivenessFd);
  merged[kParentPidEnv] = std::to_string(getpid());
  std::vector<std::string> env_strings;
  env_strings.reserve(merged.size());
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, liveness_read_, kChildLivenessFd);
  if (stdio.stdout_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdio.stdout_fd, 1);
  if (stdio.stderr_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdio.stderr_fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The child must not inherit signal masks of whichever thread spawns it.
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Status::Internal("could not start worker '" + argv[0] + "': " + std::strerror(rc));
  }
  ChildProcess child;
  child.pid = pid;
  child.pidfd = PidfdOpen(pid);
  if (child.pidfd < 0) {
    Status s = Errno("pidfd_open");
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return s;
  }
  return child;
}

int TryReap(ChildProcess& child) {
  if (child.pid <= 0) return 0;
  int status = 0;
  pid_t r = waitpid(child.pid, &status, WNOHANG);
  if (r == 0) return -1;
  child.pid = -1;
  return r > 0 ? status : 0;
}

Status KillAndReap(ChildProcess& child, Deadline deadline) {
  if (child.pid > 0) {
    kill(child.pid, SIGKILL);
    if (child.pidfd >= 0) {
      pollfd p{child.pidfd, POLLIN, 0};
      for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.Remaining());
        int ms = deadline.IsNever() ? -1
                                    : static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
        int r = poll(&p, 1, ms);
        if (r > 0 || (r == 0) || errno != EINTR) break;
      }
    }
    int status = 0;
    pid_t r = waitpid(child.pid, &status, WNOHANG);
    if (r == 0) {
      if (child.pidfd >= 0) close(child.pidfd);
      child.pidfd = -1;
      return Status::DeadlineExceeded("worker " + std::to_string(child.pid) +
                                      " did not exit after SIGKILL");
    }
    child.pid = -1;
  }
  if (child.pidfd >= 0) close(child.pidfd);
  child.pidfd = -1;
  return Status::Ok();
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return "exited with code " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    int sig = WTERMSIG(wait_status);
    return "was killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "ended (wait status " + std::to_string(wait_status) + ")";
}

void InstallWorkerGuards() {
  int64_t fd = EnvInt(ProcessSpawner::kLivenessFdEnv, -1);
  int64_t parent = EnvInt(ProcessSpawner::kParentPidEnv, -1);
  if (fd < 0 || parent < 0) return;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != static_cast<pid_t>(parent)) _exit(1);  // died before we got here
  fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);       // not for our own children
  std::thread([fd] {
    char c;
    for (;;) {
      ssize_t n = read(static_cast<int>(fd), &c, 1);
      if (n == 0 || (n < 0 && errno != EINTR)) _exit(0);  // the parent is gone
    }
  }).detach();
}

}  // namespace ferry::cluster
