// ChildProcess (tests and benchmarks only): a child process joined to the
// parent by a socketpair that carries framed messages (lists of strings), so
// parent and child synchronize on messages, never on sleeps. Every wait takes
// a Deadline.
//
// Two ways to start one:
//  * ChildProcess(body): fork(); the child runs `body` and _exits with its
//    result (it never returns into the test framework). The child inherits
//    the parent's memory, so fork only while no other thread of the parent
//    runs (a mutex held by another thread stays locked in the child).
//  * ChildProcess::ExecSelf / ExecTest: fork() then execve() of this same
//    binary, for children that must not inherit the parent's state (a UCX
//    context, Gloo threads). Everything exec needs is built before the fork,
//    so these are safe from a multi-threaded parent. The child finds its end
//    of the channel with ChannelToParent().
// Either child is SIGKILLed when the thread that started it exits, so a
// crashed test leaves no orphans: start children from a thread that outlives
// them (the test's own thread).
//
// Lifecycle: Join (exit code) or Kill reaps the child; the destructor
// SIGKILLs and reaps a child that was neither.
//
// THREAD CONTRACT: externally synchronized. The channel may be used by one
// thread while another calls Kill (which only signals and reaps).
//
//   ChildProcess child([](MessageChannel& parent) {
//     parent.Send({"ready"});
//     return parent.Receive(Deadline::After(30s)).ok() ? 0 : 1;  // wait for "done"
//   });
//   auto msg = child.channel().Receive(Deadline::After(10s));   // {"ready"}
//   child.channel().Send({"done"});
//   EXPECT_EQ(child.Join(Deadline::After(10s)).value(), 0);
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/status.h"

namespace ferry::testing {

// One end of the socketpair; borrows its descriptor. A message is a list of
// byte strings (any bytes, empty ones too).
class MessageChannel {
 public:
  explicit MessageChannel(int fd) : fd_(fd) {}
  // False if the peer is gone.
  bool Send(const std::vector<std::string>& message);
  // One whole message; DeadlineExceeded, or Unavailable once the peer closed
  // its end (it exited).
  StatusOr<std::vector<std::string>> Receive(Deadline deadline);
  // A message that must have exactly one part; Internal otherwise.
  StatusOr<std::string> ReceiveOne(Deadline deadline);

 private:
  StatusOr<std::string> ReadExactly(size_t n, Deadline deadline);
  int fd_;
};

class ChildProcess {
 public:
  // The descriptor number of the child's end of the channel in a child
  // started by ExecSelf or ExecTest.
  static constexpr int kChannelFd = 3;

  // Forks; the child runs `body` with its end of the channel.
  explicit ChildProcess(std::function<int(MessageChannel&)> body);

  // Forks and re-executes this binary with `args` after argv[0], in this
  // environment plus `env` ("NAME=value" entries, replacing the same names).
  static std::unique_ptr<ChildProcess> ExecSelf(const std::vector<std::string>& args,
                                                const std::vector<std::string>& env = {});
  // ExecSelf running only the gtest `test_name` ("Suite.Name", DISABLED_
  // ones included) of this test binary.
  static std::unique_ptr<ChildProcess> ExecTest(std::string_view test_name,
                                                const std::vector<std::string>& env = {});
  // In a child started by ExecSelf or ExecTest: its end of the channel.
  static MessageChannel ChannelToParent() { return MessageChannel(kChannelFd); }

  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  MessageChannel& channel() { return channel_; }
  pid_t pid() const { return pid_; }

  // The child's exit code, 128 + the signal if a signal ended it;
  // DeadlineExceeded if it is still running at the deadline (it keeps
  // running), FailedPrecondition if it was already reaped.
  StatusOr<int> Join(Deadline deadline);
  // SIGKILL, then reap: on return the pid is gone. No-op once reaped.
  void Kill();
  // SIGKILL without reaping: on return the child is a zombie until Join.
  void KillNoReap();

 private:
  ChildProcess() = default;
  // The parent's side after fork: keeps `fd` and watches `pid`.
  void Adopt(pid_t pid, int fd);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int fd_ = -1;
  MessageChannel channel_{-1};
  bool reaped_ = false;
};

}  // namespace ferry::testing
