#include "ferry/transport/shm/test_producer.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "ferry/common/logging.h"

namespace ferry::transport::testing {
namespace {

bool PollReadable(int fd, Deadline deadline) {
  while (true) {
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.Remaining());
    const int timeout_ms =
        deadline.IsNever() ? -1 : static_cast<int>(std::min<int64_t>(remaining.count() + 1, INT_MAX));
    pollfd p{fd, POLLIN, 0};
    const int r = poll(&p, 1, timeout_ms);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
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

uint64_t Word(uint64_t i, uint64_t seed) {
  uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ (seed * 0xD1B54A32D192ED03ull);
  x ^= x >> 29;
  return x;
}

}  // namespace

bool ProducerProcess::Channel::Send(const std::vector<std::string>& message) {
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

StatusOr<std::string> ProducerProcess::Channel::ReadExactly(size_t n, Deadline deadline) {
  std::string out;
  out.resize(n);
  size_t got = 0;
  while (got < n) {
    if (!PollReadable(fd_, deadline)) {
      return Status::DeadlineExceeded("ProducerProcess: got " + std::to_string(got) + " of " + std::to_string(n) +
                                      " bytes");
    }
    const ssize_t r = read(fd_, out.data() + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Status::Unavailable("ProducerProcess: peer closed the socket");
    got += static_cast<size_t>(r);
  }
  return out;
}

StatusOr<std::vector<std::string>> ProducerProcess::Channel::Receive(Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(std::string head, ReadExactly(sizeof(uint64_t), deadline));
  uint64_t count = 0;
  std::memcpy(&count, head.data(), sizeof(count));
  if (count > (1u << 20)) return Status::Internal("ProducerProcess: bad frame");
  std::vector<std::string> message;
  for (uint64_t i = 0; i < count; ++i) {
    FERRY_ASSIGN_OR_RETURN(std::string len_bytes, ReadExactly(sizeof(uint64_t), deadline));
    uint64_t len = 0;
    std::memcpy(&len, len_bytes.data(), sizeof(len));
    if (len > (uint64_t{1} << 30)) return Status::Internal("ProducerProcess: bad frame");
    FERRY_ASSIGN_OR_RETURN(std::string part, ReadExactly(len, deadline));
    message.push_back(std::move(part));
  }
  return message;
}

ProducerProcess::ProducerProcess(std::function<int(Channel&)> body) {
  int sv[2];
  FERRY_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) << std::strerror(errno);
  pid_ = fork();
  FERRY_CHECK(pid_ >= 0) << "fork: " << std::strerror(errno);
  if (pid_ == 0) {
    close(sv[0]);
    Channel ch(sv[1]);
    const int code = body(ch);
    _exit(code);
  }
  close(sv[1]);
  fd_ = sv[0];
  channel_ = Channel(fd_);
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  FERRY_CHECK(pidfd_ >= 0) << "pidfd_open: " << std::strerror(errno);
}

StatusOr<int> ProducerProcess::Join(Deadline deadline) {
  if (joined_) return Status::FailedPrecondition("ProducerProcess: already joined");
  if (!PollReadable(pidfd_, deadline)) return Status::DeadlineExceeded("ProducerProcess: child still running");
  int wstatus = 0;
  while (waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
  }
  joined_ = true;
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  return 128 + WTERMSIG(wstatus);
}

void ProducerProcess::Kill() {
  if (joined_) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  joined_ = true;
}

void ProducerProcess::KillNoReap() {
  if (joined_) return;
  kill(pid_, SIGKILL);
  // Wait until it is a zombie (the pidfd turns readable), without reaping.
  PollReadable(pidfd_, Deadline::After(std::chrono::seconds(30)));
}

ProducerProcess::~ProducerProcess() {
  Kill();
  for (int fd : {fd_, pidfd_}) {
    if (fd >= 0) close(fd);
  }
}

void FillPattern(void* data, uint64_t n, uint64_t seed) {
  if (n == 0) return;
  uint8_t* p = static_cast<uint8_t*>(data);
  const uint64_t words = n / 8;
  for (uint64_t i = 0; i < words; ++i) {
    const uint64_t w = Word(i, seed);
    std::memcpy(p + 8 * i, &w, 8);
  }
  const uint64_t tail = Word(words, seed);
  std::memcpy(p + 8 * words, &tail, n - 8 * words);
}

int64_t FirstMismatch(const void* data, uint64_t n, uint64_t seed) {
  if (n == 0) return -1;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const uint64_t words = n / 8;
  for (uint64_t i = 0; i < words; ++i) {
    const uint64_t w = Word(i, seed);
    if (std::memcmp(p + 8 * i, &w, 8) != 0) {
      for (uint64_t b = 0; b < 8; ++b) {
        if (p[8 * i + b] != reinterpret_cast<const uint8_t*>(&w)[b]) return static_cast<int64_t>(8 * i + b);
      }
    }
  }
  const uint64_t tail = Word(words, seed);
  for (uint64_t b = 0; b < n - 8 * words; ++b) {
    if (p[8 * words + b] != reinterpret_cast<const uint8_t*>(&tail)[b]) return static_cast<int64_t>(8 * words + b);
  }
  return -1;
}

}  // namespace ferry::transport::testing
