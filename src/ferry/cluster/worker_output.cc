#include "ferry/cluster/worker_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <asio.hpp>

#include "ferry/common/logging.h"

namespace ferry::cluster {
namespace {

constexpr size_t kReadChunk = 64 * 1024;

// Writes all of `data` to `fd`; gives up (and says so once) on an error.
void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

void LineSplitter::Feed(std::string_view bytes, const LineFn& on_line) {
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    std::string_view piece = bytes.substr(0, nl);
    if (partial_.size() + piece.size() >= max_line_ && nl == std::string_view::npos) {
      // An overlong line: deliver it in pieces of max_line_.
      size_t take = max_line_ - partial_.size();
      partial_.append(piece.substr(0, take));
      on_line(partial_);
      partial_.clear();
      bytes.remove_prefix(take);
      continue;
    }
    if (nl == std::string_view::npos) {
      partial_.append(piece);
      return;
    }
    if (partial_.empty()) {
      on_line(piece);
    } else {
      partial_.append(piece);
      on_line(partial_);
      partial_.clear();
    }
    bytes.remove_prefix(nl + 1);
  }
}

void LineSplitter::Flush(const LineFn& on_line) {
  if (partial_.empty()) return;
  on_line(partial_);
  partial_.clear();
}

WorkerOutput::WorkerOutput(rpc::IoLoop& loop, WorkerOutputOptions options, Sink sink)
    : loop_(loop), options_(std::move(options)), sink_(std::move(sink)) {
  for (Stream& stream : streams_) stream.name = options_.name;
}

StatusOr<std::unique_ptr<WorkerOutput>> WorkerOutput::Create(rpc::IoLoop& loop,
                                                             WorkerOutputOptions options,
                                                             Sink sink) {
  std::unique_ptr<WorkerOutput> out(new WorkerOutput(loop, std::move(options), std::move(sink)));
  for (Stream& stream : out->streams_) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      return Status::Internal(std::string("pipe for a worker's output: ") + std::strerror(errno));
    }
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    stream.reader = std::make_unique<asio::posix::stream_descriptor>(loop.context(), fds[0]);
    stream.write_fd = fds[1];
  }
  return out;
}

WorkerOutput::~WorkerOutput() {
  *alive_ = false;
  for (Stream& stream : streams_) {
    if (stream.write_fd >= 0) ::close(stream.write_fd);
    if (stream.log_fd >= 0) ::close(stream.log_fd);
    // `reader` closes the read end and cancels its wait.
  }
}

void WorkerOutput::Start(pid_t pid) {
  pid_ = pid;
  for (int i = 0; i < 2; ++i) {
    Stream& stream = streams_[i];
    if (stream.write_fd >= 0) ::close(stream.write_fd);
    stream.write_fd = -1;
    if (options_.log_dir.empty()) continue;
    stream.path = options_.log_dir + "/worker-" + options_.worker_id + "-" + std::to_string(pid) +
                  (i == 0 ? ".out" : ".err");
    stream.log_fd = ::open(stream.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (stream.log_fd < 0) {
      FERRY_LOG(WARNING) << "cannot write the worker log " << stream.path << ": "
                         << std::strerror(errno) << "; its output still reaches the driver";
      stream.path.clear();
    }
  }
  std::weak_ptr<bool> alive = alive_;
  loop_.Post([this, alive] {
    if (alive.expired() || finished_) return;
    Arm(0);
    Arm(1);
  });
}

void WorkerOutput::Arm(int index) {
  Stream& stream = streams_[index];
  stream.reader->async_wait(asio::posix::stream_descriptor::wait_read,
                            [this, index](const asio::error_code& ec) {
                              if (ec == asio::error::operation_aborted || finished_) return;
                              if (ReadAvailable(index)) Arm(index);
                            });
}

bool WorkerOutput::ReadAvailable(int index) {
  Stream& stream = streams_[index];
  char buf[kReadChunk];
  for (;;) {
    ssize_t n = ::read(stream.reader->native_handle(), buf, sizeof buf);
    if (n > 0) {
      Deliver(index, std::string_view(buf, static_cast<size_t>(n)), false);
      if (static_cast<size_t>(n) < sizeof buf) return true;  // drained for now
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    Deliver(index, {}, true);  // EOF (or an error): the last unfinished line
    return false;
  }
}

void WorkerOutput::Deliver(int index, std::string_view bytes, bool flush) {
  Stream& stream = streams_[index];
  OutputBatch batch{pid_, stream.name, index == 1, {}};
  std::string to_file;
  auto on_line = [&](std::string_view line) {
    if (line.substr(0, kNameMarker.size()) == kNameMarker) {
      std::string name(line.substr(kNameMarker.size()));
      if (name == stream.name) return;
      if (!batch.lines.empty() && sink_) sink_(std::move(batch));
      stream.name = std::move(name);
      batch = OutputBatch{pid_, stream.name, index == 1, {}};
      return;
    }
    to_file.append(line).push_back('\n');
    tail_.emplace_back(line);
    if (tail_.size() > kTailLines) tail_.pop_front();
    batch.lines.emplace_back(line);
  };
  stream.splitter.Feed(bytes, on_line);
  if (flush) stream.splitter.Flush(on_line);
  if (stream.log_fd >= 0) WriteAll(stream.log_fd, to_file);
  if (!batch.lines.empty() && sink_) sink_(std::move(batch));
}

void WorkerOutput::Finish() {
  if (finished_) return;
  finished_ = true;
  for (int i = 0; i < 2; ++i) {
    // The process is gone, so what it wrote is in the pipe; a child it left
    // behind may still hold the write end, so this reads what is there and
    // does not wait for EOF.
    if (ReadAvailable(i)) Deliver(i, {}, true);
    asio::error_code ignored;
    streams_[i].reader->cancel(ignored);
  }
}

}  // namespace ferry::cluster
