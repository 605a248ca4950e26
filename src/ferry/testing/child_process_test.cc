#include "ferry/testing/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "ferry/testing/deadline.h"

namespace ferry::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kExecEnv[] = "FERRY_CHILD_PROCESS_TEST_WORD";

// The process state letter from /proc/<pid>/stat ('Z' for a zombie), or 0.
char ProcessState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? 0 : stat[paren + 2];
}

TEST(ChildProcessTest, MessagesBothWaysAndTheExitCode) {
  ChildProcess child([](MessageChannel& parent) {
    if (!parent.Send({"ready"})) return 10;
    auto m = parent.Receive(Soon());
    if (!m.ok()) return 11;
    // Echo the parts back in reverse order.
    std::vector<std::string> reversed(m->rbegin(), m->rend());
    if (!parent.Send(reversed)) return 12;
    return 7;
  });
  auto ready = child.channel().ReceiveOne(Soon());
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(*ready, "ready");
  const std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(child.channel().Send({"", binary, std::string(100000, 'x')}));
  auto echo = child.channel().Receive(Soon());
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, (std::vector<std::string>{std::string(100000, 'x'), binary, ""}));
  auto code = child.Join(Soon());
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 7);
  EXPECT_EQ(child.Join(Soon()).status().code(), StatusCode::kFailedPrecondition) << "reaped once";
}

TEST(ChildProcessTest, WaitsEndAtTheirDeadlines) {
  ChildProcess child([](MessageChannel& parent) { return parent.Receive(Soon()).ok() ? 0 : 1; });
  auto nothing = child.channel().Receive(Deadline::After(milliseconds(20)));
  EXPECT_EQ(nothing.status().code(), StatusCode::kDeadlineExceeded) << nothing.status();
  auto running = child.Join(Deadline::After(milliseconds(20)));
  EXPECT_EQ(running.status().code(), StatusCode::kDeadlineExceeded) << running.status();
  ASSERT_TRUE(child.channel().Send({"go"}));
  auto code = child.Join(Soon());
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << "still running after the missed deadlines";
}

TEST(ChildProcessTest, ReceiveFromAnExitedChildIsUnavailable) {
  ChildProcess child([](MessageChannel&) { return 0; });
  auto m = child.channel().Receive(Soon());
  EXPECT_EQ(m.status().code(), StatusCode::kUnavailable) << m.status();
  EXPECT_EQ(*child.Join(Soon()), 0);
  EXPECT_FALSE(child.channel().Send({"late"})) << "nobody reads it";
}

TEST(ChildProcessTest, ReceiveOneRefusesAMessageOfSeveralParts) {
  ChildProcess child([](MessageChannel& parent) { return parent.Send({"a", "b"}) ? 0 : 1; });
  EXPECT_EQ(child.channel().ReceiveOne(Soon()).status().code(), StatusCode::kInternal);
  EXPECT_EQ(*child.Join(Soon()), 0);
}

TEST(ChildProcessTest, KilledBySignalIs128PlusTheSignal) {
  ChildProcess child([](MessageChannel& parent) {
    parent.Send({"ready"});
    return parent.Receive(Deadline::Never()).ok() ? 0 : 1;  // ended by the signal first
  });
  ASSERT_TRUE(child.channel().Receive(Soon()).ok());
  ASSERT_EQ(kill(child.pid(), SIGTERM), 0);
  auto code = child.Join(Soon());
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 128 + SIGTERM);
}

TEST(ChildProcessTest, KillReapsAndKillNoReapLeavesAZombie) {
  ChildProcess reaped(
      [](MessageChannel& parent) { return parent.Receive(Deadline::Never()).ok() ? 0 : 1; });
  reaped.Kill();
  EXPECT_EQ(ProcessState(reaped.pid()), 0) << "no /proc entry once reaped";
  EXPECT_EQ(reaped.Join(Soon()).status().code(), StatusCode::kFailedPrecondition);
  reaped.Kill();  // again: nothing to do

  ChildProcess zombie(
      [](MessageChannel& parent) { return parent.Receive(Deadline::Never()).ok() ? 0 : 1; });
  zombie.KillNoReap();
  EXPECT_EQ(ProcessState(zombie.pid()), 'Z');
  auto code = zombie.Join(Soon());
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 128 + SIGKILL);
}

TEST(ChildProcessTest, DestructorKillsARunningChild) {
  pid_t pid = -1;
  {
    ChildProcess child(
        [](MessageChannel& parent) { return parent.Receive(Deadline::Never()).ok() ? 0 : 1; });
    pid = child.pid();
    EXPECT_NE(ProcessState(pid), 0);
  }
  EXPECT_EQ(ProcessState(pid), 0);
}

// Runs only as the child that ExecTestRunsOneTestOfThisBinary starts.
TEST(ChildProcessExec, DISABLED_Child) {
  const char* word = std::getenv(kExecEnv);
  if (word == nullptr) GTEST_SKIP() << "runs only as the child of ChildProcessTest.ExecTest*";
  MessageChannel parent = ChildProcess::ChannelToParent();
  auto m = parent.ReceiveOne(Soon());
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(parent.Send({*m, word, std::to_string(getppid())}));
}

TEST(ChildProcessTest, ExecTestRunsOneTestOfThisBinary) {
  // The variable replaces one the parent may have.
  setenv(kExecEnv, "parent's", 1);
  auto child = ChildProcess::ExecTest("ChildProcessExec.DISABLED_Child",
                                      {std::string(kExecEnv) + "=child's"});
  unsetenv(kExecEnv);
  ASSERT_TRUE(child->channel().Send({"hello"}));
  auto reply = child->channel().Receive(Soon());
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, (std::vector<std::string>{"hello", "child's", std::to_string(getpid())}));
  auto code = child->Join(Soon());
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << "the child's test passed";
}

TEST(ChildProcessTest, ChannelOfAnExecedChildClosesWhenItExits) {
  auto child = ChildProcess::ExecTest("NoSuchSuite.NoSuchTest");
  EXPECT_EQ(child->channel().Receive(Soon()).status().code(), StatusCode::kUnavailable)
      << "the channel closes when the child exits";
  auto code = child->Join(Soon());
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << "gtest with a filter that matches nothing";
}

}  // namespace
}  // namespace ferry::testing
