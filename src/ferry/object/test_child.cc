#include "ferry/object/test_child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>

#include "ferry/common/logging.h"

namespace ferry::object::testing {
namespace {

// Polls one descriptor until readable or the deadline; true if readable.
bool PollReadable(int fd, Deadline deadline) {
  while (true) {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.Remaining());
    int timeout_ms = deadline.IsNever() ? -1 : static_cast<int>(std::min<int64_t>(remaining.count() + 1, INT_MAX));
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

bool TestChild::Channel::Send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = write(write_fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

StatusOr<std::string> TestChild::Channel::Receive(size_t n, Deadline deadline) {
  std::string out;
  while (out.size() < n) {
    if (!PollReadable(read_fd_, deadline)) {
      return Status::DeadlineExceeded("TestChild: got " + std::to_string(out.size()) + " of " +
                                      std::to_string(n) + " bytes");
    }
    char buf[256];
    ssize_t r = read(read_fd_, buf, std::min(sizeof(buf), n - out.size()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Status::Unavailable("TestChild: peer closed the pipe");
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

TestChild::TestChild(std::function<int(Channel&)> body) {
  int to_child[2], to_parent[2];
  FERRY_CHECK(pipe2(to_child, O_CLOEXEC) == 0 && pipe2(to_parent, O_CLOEXEC) == 0);
  pid_ = fork();
  FERRY_CHECK(pid_ >= 0) << "fork failed";
  if (pid_ == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    Channel ch(to_child[0], to_parent[1]);
    int code = body(ch);
    _exit(code);
  }
  close(to_child[0]);
  close(to_parent[1]);
  fds_[0] = to_parent[0];
  fds_[1] = to_child[1];
  channel_ = Channel(fds_[0], fds_[1]);
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  FERRY_CHECK(pidfd_ >= 0) << "pidfd_open failed";
}

StatusOr<int> TestChild::Join(Deadline deadline) {
  if (joined_) return Status::FailedPrecondition("already joined");
  if (!PollReadable(pidfd_, deadline)) return Status::DeadlineExceeded("child still running");
  int wstatus = 0;
  while (waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
  }
  joined_ = true;
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  return 128 + WTERMSIG(wstatus);
}

TestChild::~TestChild() {
  if (!joined_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  for (int fd : {fds_[0], fds_[1], pidfd_}) {
    if (fd >= 0) close(fd);
  }
}

}  // namespace ferry::object::testing
