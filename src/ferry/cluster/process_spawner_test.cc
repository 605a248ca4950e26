#include "ferry/cluster/process_spawner.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace ferry::cluster {
namespace {

// Waits on the pidfd (no sleeping) until the child exits or 10 s pass.
bool WaitExit(const ChildProcess& child) {
  pollfd p{child.pidfd, POLLIN, 0};
  return poll(&p, 1, 10'000) == 1;
}

TEST(ProcessSpawnerTest, SpawnPassesEnvironmentAndReportsExit) {
  ProcessSpawner spawner;
  auto child = spawner.Spawn({"/bin/sh", "-c", "test \"$FERRY_TEST_X\" = hello && exit 7"},
                             {{"FERRY_TEST_X", "hello"}});
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_TRUE(WaitExit(*child));
  int status = TryReap(*child);
  EXPECT_EQ(DescribeWaitStatus(status), "exited with code 7");
  EXPECT_TRUE(KillAndReap(*child, Deadline::After(std::chrono::seconds(1))).ok());
}

TEST(ProcessSpawnerTest, ChildSeesTheLivenessPipeOnFd3) {
  ProcessSpawner spawner;
  // fd 3 must be open in the child and the variables set.
  auto child = spawner.Spawn(
      {"/bin/sh", "-c",
       "test \"$FERRY_LIVENESS_FD\" = 3 && test -e /proc/self/fd/3 && exit 0; exit 1"},
      {});
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE(WaitExit(*child));
  EXPECT_EQ(DescribeWaitStatus(TryReap(*child)), "exited with code 0");
  (void)KillAndReap(*child, Deadline::After(std::chrono::seconds(1)));
}

TEST(ProcessSpawnerTest, KillAndReapEndsARunningChild) {
  ProcessSpawner spawner;
  auto child = spawner.Spawn({"/bin/sleep", "1000"}, {});
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(TryReap(*child), -1);  // still running
  pid_t pid = child->pid;
  EXPECT_TRUE(KillAndReap(*child, Deadline::After(std::chrono::seconds(10))).ok());
  EXPECT_EQ(kill(pid, 0), -1);  // reaped: the pid no longer exists
}

TEST(ProcessSpawnerTest, MissingProgramIsAnError) {
  ProcessSpawner spawner;
  auto child = spawner.Spawn({"/nonexistent/ferry-worker"}, {});
  if (child.ok()) {  // glibc may report exec failure as exit 127
    ASSERT_TRUE(WaitExit(*child));
    EXPECT_EQ(DescribeWaitStatus(TryReap(*child)), "exited with code 127");
    (void)KillAndReap(*child, Deadline::After(std::chrono::seconds(1)));
  }
}

}  // namespace
}  // namespace ferry::cluster
