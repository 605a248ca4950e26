// WorkerOutput: what one worker process prints, kept on disk and passed on.
//
// A worker's stdout and stderr are the write ends of two pipes made here
// (ProcessSpawner puts them on the child's fds 1 and 2). This object owns the
// read ends: it reads them on the io loop as output arrives, appends each
// complete line to the worker's log files (<log dir>/worker-<worker id>-<pid>
// .out and .err, as Ray names them) and hands the lines, in order and in
// batches, to a sink that streams them to the driver. It keeps the last
// kTailLines lines of both streams for the report of a crash.
//
// A line that starts with kNameMarker is not output: the rest of it is the
// name the following lines of that stream carry (a pooled worker announces
// the function it runs on both streams; Ray's workers do the same with
// ":task_name:"). The streams are read independently, so each has its own.
//
// Reading never holds up the worker beyond the pipe's buffer: each wake-up
// reads what is there and returns to the loop. When the process has exited,
// Finish() reads what is left (a dead process's writes are all in the pipe),
// delivers the unfinished last line, and stops.
//
// Thread contract: Create() and Start() from any thread; reading, the sink,
// Finish() and Tail() on the io thread. Destroy on the io thread, or after
// the loop has stopped.
//
//   FERRY_ASSIGN_OR_RETURN(auto out, WorkerOutput::Create(loop, {.log_dir = d}, sink));
//   spawner.Spawn(argv, env, {out->stdout_write_fd(), out->stderr_write_fd()});
//   out->Start(pid);
//   ... on exit: out->Finish(); for (auto& line : out->Tail()) ...
#pragma once

#include <sys/types.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/posix/stream_descriptor.hpp>

#include "ferry/rpc/io_loop.h"
#include "ferry/status.h"

namespace ferry::cluster {

// Splits a byte stream into lines (without the '\n'). A line longer than
// max_line is cut into pieces of that size, so memory stays bounded.
class LineSplitter {
 public:
  using LineFn = std::function<void(std::string_view)>;
  explicit LineSplitter(size_t max_line = 64 * 1024) : max_line_(max_line) {}
  // Calls on_line for every line `bytes` completes.
  void Feed(std::string_view bytes, const LineFn& on_line);
  // Calls on_line with the unfinished last line, if any.
  void Flush(const LineFn& on_line);

 private:
  const size_t max_line_;
  std::string partial_;
};

// Lines of one stream that carry the same name, in the order printed.
struct OutputBatch {
  pid_t pid = 0;
  std::string name;
  bool is_stderr = false;
  std::vector<std::string> lines;
};

struct WorkerOutputOptions {
  // Where the log files go; empty: none are written.
  std::string log_dir;
  // Names the log files (hex).
  std::string worker_id;
  // What the lines carry until the worker names itself.
  std::string name;
};

class WorkerOutput {
 public:
  static constexpr std::string_view kNameMarker = "\036ferry-name:";  // \036: ASCII RS
  static constexpr size_t kTailLines = 20;
  using Sink = std::function<void(OutputBatch)>;

  // Makes the pipes. A sink may be empty (files and tail only).
  static StatusOr<std::unique_ptr<WorkerOutput>> Create(rpc::IoLoop& loop,
                                                        WorkerOutputOptions options, Sink sink);
  ~WorkerOutput();
  WorkerOutput(const WorkerOutput&) = delete;
  WorkerOutput& operator=(const WorkerOutput&) = delete;

  // For the child's fds 1 and 2; closed here by Start().
  int stdout_write_fd() const { return streams_[0].write_fd; }
  int stderr_write_fd() const { return streams_[1].write_fd; }

  // The child runs as `pid`: closes this process's write ends, opens the
  // log files (a failure to open them is logged, and output still flows)
  // and starts reading.
  void Start(pid_t pid);
  // The process has exited: reads what is left, delivers the last
  // unfinished lines and stops reading. Idempotent.
  void Finish();
  // The last kTailLines lines of both streams, oldest first.
  const std::deque<std::string>& Tail() const { return tail_; }
  // The log files ("" before Start or when none are written).
  std::string stdout_path() const { return streams_[0].path; }
  std::string stderr_path() const { return streams_[1].path; }

 private:
  WorkerOutput(rpc::IoLoop& loop, WorkerOutputOptions options, Sink sink);
  void Arm(int index);
  // Reads what `stream` holds now; returns false at EOF or on an error.
  bool ReadAvailable(int index);
  void Deliver(int index, std::string_view bytes, bool flush);

  struct Stream {
    std::unique_ptr<asio::posix::stream_descriptor> reader;  // owns the read end
    int write_fd = -1;
    int log_fd = -1;
    std::string path;
    std::string name;
    LineSplitter splitter;
  };

  rpc::IoLoop& loop_;
  const WorkerOutputOptions options_;
  const Sink sink_;
  pid_t pid_ = 0;  // set by Start(), before any read
  Stream streams_[2];
  std::deque<std::string> tail_;
  bool finished_ = false;
  // Start()'s posted work checks it: the object may be gone by then.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ferry::cluster
