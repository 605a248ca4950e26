#include "ferry/cluster/worker_output.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>

#include "ferry/cluster/process_spawner.h"
#include "ferry/testing/deadline.h"

namespace ferry::cluster {
namespace {

std::vector<std::string> Split(LineSplitter& splitter, std::string_view bytes) {
  std::vector<std::string> lines;
  splitter.Feed(bytes, [&](std::string_view line) { lines.emplace_back(line); });
  return lines;
}

TEST(LineSplitterTest, JoinsLinesAcrossChunksAndKeepsTheUnfinishedOne) {
  LineSplitter splitter;
  EXPECT_EQ(Split(splitter, "a\nb"), std::vector<std::string>{"a"});
  EXPECT_EQ(Split(splitter, "c\n\nd"), (std::vector<std::string>{"bc", ""}));
  std::vector<std::string> rest;
  splitter.Flush([&](std::string_view line) { rest.emplace_back(line); });
  EXPECT_EQ(rest, std::vector<std::string>{"d"});
  splitter.Flush([&](std::string_view line) { rest.emplace_back(line); });
  EXPECT_EQ(rest.size(), 1u);  // nothing left after a flush
}

TEST(LineSplitterTest, CutsAnOverlongLineIntoBoundedPieces) {
  LineSplitter splitter(4);
  EXPECT_EQ(Split(splitter, "abcdefghij"), (std::vector<std::string>{"abcd", "efgh"}));
  EXPECT_EQ(Split(splitter, "k\n"), std::vector<std::string>{"ijk"});
}

// A real child printing through the pipes, read on a real io loop.
class WorkerOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ferry-output-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    loop_.Start();
  }
  void TearDown() override {
    RunOnLoop([this] { output_.reset(); });
    loop_.Stop();
    loop_.Join();
    std::filesystem::remove_all(dir_);
  }

  void RunOnLoop(std::function<void()> fn) {
    std::promise<void> done;
    loop_.Post([&] {
      fn();
      done.set_value();
    });
    ASSERT_EQ(done.get_future().wait_for(testing::kSoon), std::future_status::ready);
  }

  // Runs `script` in /bin/sh with its output here; returns once it exited
  // and Finish() ran.
  void Run(const std::string& script) {
    auto out = WorkerOutput::Create(loop_,
                                    {.log_dir = dir_.string(), .worker_id = "abc", .name = "Init"},
                                    [this](OutputBatch batch) {
                                      std::lock_guard<std::mutex> lock(mu_);
                                      batches_.push_back(std::move(batch));
                                    });
    ASSERT_TRUE(out.ok()) << out.status();
    output_ = std::move(*out);
    auto child = spawner_.Spawn({"/bin/sh", "-c", script}, {},
                                {output_->stdout_write_fd(), output_->stderr_write_fd()});
    ASSERT_TRUE(child.ok()) << child.status();
    output_->Start(child->pid);
    pid_ = child->pid;
    pollfd p{child->pidfd, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 30'000), 1);
    ASSERT_TRUE(KillAndReap(*child, testing::Soon()).ok());
    RunOnLoop([this] { output_->Finish(); });
  }

  std::vector<std::string> Lines(bool is_stderr, const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> lines;
    for (auto& b : batches_) {
      if (b.is_stderr != is_stderr || b.name != name) continue;
      lines.insert(lines.end(), b.lines.begin(), b.lines.end());
    }
    return lines;
  }

  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  rpc::IoLoop loop_{"output-test"};
  ProcessSpawner spawner_;
  std::filesystem::path dir_;
  std::unique_ptr<WorkerOutput> output_;
  std::mutex mu_;
  std::vector<OutputBatch> batches_;
  pid_t pid_ = 0;
};

TEST_F(WorkerOutputTest, LinesReachTheSinkAndTheFilesWithTheNameTheWorkerAnnounced) {
  Run("echo one; echo oops >&2; printf '\\036ferry-name:f\\n'; printf '\\036ferry-name:f\\n' >&2;"
      " echo two; echo bad >&2; printf unfinished");
  EXPECT_EQ(Lines(false, "Init"), std::vector<std::string>{"one"});
  EXPECT_EQ(Lines(true, "Init"), std::vector<std::string>{"oops"});
  EXPECT_EQ(Lines(false, "f"), (std::vector<std::string>{"two", "unfinished"}));
  EXPECT_EQ(Lines(true, "f"), std::vector<std::string>{"bad"});
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const OutputBatch& b : batches_) EXPECT_EQ(b.pid, pid_);  // every batch names its process
  }
  // The files hold the output without the markers, named like Ray's.
  ASSERT_FALSE(output_->stdout_path().empty());
  EXPECT_EQ(std::filesystem::path(output_->stdout_path()).filename().string().substr(0, 11),
            "worker-abc-");
  EXPECT_EQ(Read(output_->stdout_path()), "one\ntwo\nunfinished\n");
  EXPECT_EQ(Read(output_->stderr_path()), "oops\nbad\n");
}

TEST_F(WorkerOutputTest, TheTailKeepsTheLastLinesOfAProcessThatDiedPrinting) {
  // More than the pipe holds unread is fine: it is read as it comes.
  Run("i=0; while [ $i -lt 100 ]; do echo line $i; i=$((i+1)); done; echo fatal >&2; kill -9 $$");
  std::deque<std::string> tail;
  RunOnLoop([&] { tail = output_->Tail(); });
  ASSERT_EQ(tail.size(), WorkerOutput::kTailLines);
  EXPECT_EQ(tail.back(), "fatal");
  EXPECT_EQ(tail[tail.size() - 2], "line 99");
  EXPECT_EQ(Lines(false, "Init").size(), 100u);
}

TEST_F(WorkerOutputTest, NoLogDirMeansNoFilesButTheLinesStillFlow) {
  auto out = WorkerOutput::Create(loop_, {.log_dir = "", .worker_id = "x", .name = "A"}, nullptr);
  ASSERT_TRUE(out.ok());
  (*out)->Start(1);
  EXPECT_EQ((*out)->stdout_path(), "");
  RunOnLoop([&] {
    (*out)->Finish();
    out->reset();
  });
}

}  // namespace
}  // namespace ferry::cluster
