// TestChild (tests only): a fork()ed child process running a function, with
// a byte pipe each way so parent and child synchronize on messages instead
// of sleeps. Every wait takes a Deadline.
//
// THREAD CONTRACT: externally synchronized; fork only from a test's main
// thread while no other thread runs.
//
//   TestChild child([](TestChild::Channel& ch) { ch.Send("ready"); return 0; });
//   ASSERT_EQ(child.Receive(5, Deadline::After(10s)).value(), "ready");
//   EXPECT_EQ(child.Join(Deadline::After(10s)).value(), 0);
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>

#include "ferry/common/clock.h"
#include "ferry/status.h"

namespace ferry::object::testing {

class TestChild {
 public:
  // One end of the two pipes.
  class Channel {
   public:
    Channel(int read_fd, int write_fd) : read_fd_(read_fd), write_fd_(write_fd) {}
    bool Send(std::string_view bytes);
    // Exactly `n` bytes, or an error at EOF or the deadline.
    StatusOr<std::string> Receive(size_t n, Deadline deadline);

   private:
    int read_fd_;
    int write_fd_;
  };

  // Forks; the child runs `body` and _exits with its result (never returns
  // into the test framework).
  explicit TestChild(std::function<int(Channel&)> body);
  ~TestChild();  // kills the child if it was not joined

  bool Send(std::string_view bytes) { return channel_.Send(bytes); }
  StatusOr<std::string> Receive(size_t n, Deadline deadline) { return channel_.Receive(n, deadline); }
  // The child's exit code; DeadlineExceeded if it is still running.
  StatusOr<int> Join(Deadline deadline);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int fds_[2] = {-1, -1};  // parent's read and write ends
  Channel channel_{-1, -1};
  bool joined_ = false;
};

}  // namespace ferry::object::testing
