// ProducerProcess (tests and benchmarks only, not part of a library): a
// fork()ed child process running a function, joined to the parent by a
// socketpair that carries framed messages (lists of strings), so the two
// synchronize on messages, never on sleeps. Every wait takes a Deadline.
//
// THREAD CONTRACT: externally synchronized; fork only while no other thread
// of the parent runs.
//
//   ProducerProcess child([](ProducerProcess::Channel& ch) {
//     ch.Send({"ready"});
//     return ch.Receive(Deadline::After(30s)).ok() ? 0 : 1;   // wait for "done"
//   });
//   auto msg = child.channel().Receive(Deadline::After(10s));
//   child.channel().Send({"done"});
//   EXPECT_EQ(child.Join(Deadline::After(10s)).value(), 0);
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/status.h"

namespace ferry::transport::testing {

class ProducerProcess {
 public:
  // One end of the socketpair.
  class Channel {
   public:
    explicit Channel(int fd) : fd_(fd) {}
    bool Send(const std::vector<std::string>& message);
    // One whole message; DeadlineExceeded, or Unavailable at EOF.
    StatusOr<std::vector<std::string>> Receive(Deadline deadline);

   private:
    StatusOr<std::string> ReadExactly(size_t n, Deadline deadline);
    int fd_;
  };

  // Forks; the child runs `body` and _exits with its result (it never
  // returns into the test framework).
  explicit ProducerProcess(std::function<int(Channel&)> body);
  ~ProducerProcess();  // SIGKILLs and reaps the child if it was not joined
  ProducerProcess(const ProducerProcess&) = delete;
  ProducerProcess& operator=(const ProducerProcess&) = delete;

  Channel& channel() { return channel_; }
  pid_t pid() const { return pid_; }

  // The child's exit code (128 + signal if killed); DeadlineExceeded if it is
  // still running.
  StatusOr<int> Join(Deadline deadline);
  // SIGKILL, then reap: on return the pid is gone.
  void Kill();
  // SIGKILL without reaping: the child stays a zombie until Join.
  void KillNoReap();

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int fd_ = -1;
  Channel channel_{-1};
  bool joined_ = false;
};

// Word-wise patterns that are cheap to write and check at 64 MiB.
void FillPattern(void* data, uint64_t n, uint64_t seed);
// The index of the first byte that differs, or -1.
int64_t FirstMismatch(const void* data, uint64_t n, uint64_t seed);

}  // namespace ferry::transport::testing
