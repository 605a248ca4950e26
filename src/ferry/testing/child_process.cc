#include "ferry/testing/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>

#include "ferry/common/logging.h"

extern char** environ;

namespace ferry::testing {
namespace {

// Polls one descriptor until readable (or hung up) or the deadline; true if
// readable.
bool PollReadable(int fd, Deadline deadline) {
  while (true) {
    const auto remaining = std::chrono::ceil<std::chrono::milliseconds>(deadline.Remaining());
    const int timeout_ms = deadline.IsNever()
                               ? -1
                               : static_cast<int>(std::min<int64_t>(remaining.count(), INT_MAX));
    pollfd p{fd, POLLIN, 0};
    const int r = poll(&p, 1, timeout_ms);
    if (r > 0) return true;
    if (r == 0 && deadline.Expired()) return false;
    if (r < 0 && errno != EINTR) return false;
  }
}

bool WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// socketpair + fork. Returns 0 in the child and the child's pid in the
// parent; `*fd` is then this side's end (the other side's is closed). The
// child dies with the thread that forked it, and exits at once if that
// thread is already gone (the signal would never come). Only
// async-signal-safe calls run in the child before this returns.
pid_t ForkWithChannel(int* fd) {
  int sv[2];
  FERRY_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) << std::strerror(errno);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  FERRY_CHECK(pid >= 0) << "fork: " << std::strerror(errno);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    close(sv[0]);
    *fd = sv[1];
    return 0;
  }
  close(sv[1]);
  *fd = sv[0];
  return pid;
}

}  // namespace

bool MessageChannel::Send(const std::vector<std::string>& message) {
  std::string frame;
  const uint64_t count = message.size();
  frame.append(reinterpret_cast<const char*>(&count), sizeof(count));
  for (const std::string& part : message) {
    const uint64_t len = part.size();
    frame.append(reinterpret_cast<const char*>(&len), sizeof(len));
    frame.append(part);
  }
  return WriteAll(fd_, frame.data(), frame.size());
}

StatusOr<std::string> MessageChannel::ReadExactly(size_t n, Deadline deadline) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    if (!PollReadable(fd_, deadline)) {
      return Status::DeadlineExceeded("test channel: got " + std::to_string(got) + " of " +
                                      std::to_string(n) + " bytes by the deadline");
    }
    const ssize_t r = read(fd_, out.data() + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Status::Unavailable("test channel: the peer closed its end");
    got += static_cast<size_t>(r);
  }
  return out;
}

StatusOr<std::vector<std::string>> MessageChannel::Receive(Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(std::string head, ReadExactly(sizeof(uint64_t), deadline));
  uint64_t count = 0;
  std::memcpy(&count, head.data(), sizeof(count));
  if (count > (uint64_t{1} << 20)) return Status::Internal("test channel: bad frame");
  std::vector<std::string> message;
  for (uint64_t i = 0; i < count; ++i) {
    FERRY_ASSIGN_OR_RETURN(std::string len_bytes, ReadExactly(sizeof(uint64_t), deadline));
    uint64_t len = 0;
    std::memcpy(&len, len_bytes.data(), sizeof(len));
    if (len > (uint64_t{1} << 30)) return Status::Internal("test channel: bad frame");
    FERRY_ASSIGN_OR_RETURN(std::string part, ReadExactly(len, deadline));
    message.push_back(std::move(part));
  }
  return message;
}

StatusOr<std::string> MessageChannel::ReceiveOne(Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> message, Receive(deadline));
  if (message.size() != 1) {
    return Status::Internal("test channel: expected a one-part message, got " +
                            std::to_string(message.size()) + " parts");
  }
  return std::move(message[0]);
}

ChildProcess::ChildProcess(std::function<int(MessageChannel&)> body) {
  int fd = -1;
  const pid_t pid = ForkWithChannel(&fd);
  if (pid == 0) {
    MessageChannel ch(fd);
    _exit(body(ch));
  }
  Adopt(pid, fd);
}

std::unique_ptr<ChildProcess> ChildProcess::ExecSelf(const std::vector<std::string>& args,
                                                     const std::vector<std::string>& env) {
  // Everything exec needs is built before fork: only async-signal-safe calls
  // run in the child of a multi-threaded process.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    const bool replaced = std::any_of(env.begin(), env.end(), [&](const std::string& add) {
      return std::string_view(add).substr(0, add.find('=')) == name;
    });
    if (!replaced) env_strings.emplace_back(entry);
  }
  env_strings.insert(env_strings.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_strings = {program_invocation_name};
  arg_strings.insert(arg_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : arg_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  int fd = -1;
  const pid_t pid = ForkWithChannel(&fd);
  if (pid == 0) {
    // dup2 onto kChannelFd leaves the copy without FD_CLOEXEC; if fd already
    // is kChannelFd, dup2 does nothing and fcntl clears the flag.
    if (dup2(fd, kChannelFd) < 0 || fcntl(kChannelFd, F_SETFD, 0) != 0) _exit(126);
    execve("/proc/self/exe", argv.data(), envp.data());
    _exit(127);
  }
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->Adopt(pid, fd);
  return child;
}

std::unique_ptr<ChildProcess> ChildProcess::ExecTest(std::string_view test_name,
                                                     const std::vector<std::string>& env) {
  return ExecSelf({"--gtest_filter=" + std::string(test_name), "--gtest_also_run_disabled_tests"},
                  env);
}

void ChildProcess::Adopt(pid_t pid, int fd) {
  pid_ = pid;
  fd_ = fd;
  channel_ = MessageChannel(fd_);
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  FERRY_CHECK(pidfd_ >= 0) << "pidfd_open: " << std::strerror(errno);
}

StatusOr<int> ChildProcess::Join(Deadline deadline) {
  if (reaped_) return Status::FailedPrecondition("child process: already reaped");
  if (!PollReadable(pidfd_, deadline)) {
    return Status::DeadlineExceeded("child process " + std::to_string(pid_) +
                                    ": still running at the deadline");
  }
  int wstatus = 0;
  while (waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  return 128 + WTERMSIG(wstatus);
}

void ChildProcess::Kill() {
  if (reaped_) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
}

void ChildProcess::KillNoReap() {
  if (reaped_) return;
  kill(pid_, SIGKILL);
  // The pidfd turns readable once the child is a zombie. The bound only
  // matters for a child stuck in the kernel, which SIGKILL cannot end yet.
  PollReadable(pidfd_, Deadline::After(std::chrono::seconds(30)));
}

ChildProcess::~ChildProcess() {
  Kill();
  for (int fd : {fd_, pidfd_}) {
    if (fd >= 0) close(fd);
  }
}

}  // namespace ferry::testing
