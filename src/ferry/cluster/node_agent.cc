#include "ferry/cluster/node_agent.h"

#include <signal.h>
#include <unistd.h>

#include <future>

#include <asio.hpp>

#include "ferry/cluster/private_dir.h"
#include "ferry/common/config.h"
#include "ferry/common/id.h"
#include "ferry/common/logging.h"

namespace ferry::cluster {

namespace {

// How many of a crashed worker's last lines its exit description quotes.
constexpr size_t kCrashLines = 10;

std::string DescribeLastLines(const std::deque<std::string>& tail) {
  if (tail.empty()) return "";
  std::string out = "; its last output:";
  size_t skip = tail.size() > kCrashLines ? tail.size() - kCrashLines : 0;
  for (size_t i = skip; i < tail.size(); ++i) out += "\n    " + tail[i];
  return out;
}

// `output` with its log dir made, or with none if it cannot be made safely:
// the output then only streams.
NodeAgentOutput WithLogDir(NodeAgentOutput output) {
  if (output.log_dir.empty()) return output;
  Status s = MakePrivateDir(output.log_dir);
  if (!s.ok()) {
    FERRY_LOG(WARNING) << "worker output is not kept in files: the log dir " << output.log_dir
                       << " cannot be used: " << s.message();
    output.log_dir.clear();
  }
  return output;
}

}  // namespace

struct NodeAgent::Worker {
  std::string actor_id;
  ChildProcess child;
  bool exited = false;
  bool stopped = false;  // Stop() killed it: its exit is no crash
  std::unique_ptr<asio::posix::stream_descriptor> exit_watch;
  std::unique_ptr<WorkerOutput> output;  // used on the io thread
};

NodeAgent::NodeAgent(rpc::IoLoop& loop, ExitCallback on_exit, NodeAgentOutput output)
    : loop_(loop), on_exit_(std::move(on_exit)), output_(WithLogDir(std::move(output))) {}

NodeAgent::~NodeAgent() { Shutdown(); }

StatusOr<int> NodeAgent::Start(const proto::StartWorker& request) {
  {
    MutexLock lock(mu_);
    if (shut_down_) return Status::Unavailable("the node agent is shutting down");
    if (workers_.count(request.actor_id())) {
      return Status::AlreadyExists("this node already runs a worker for the actor");
    }
  }
  std::vector<std::string> argv(request.worker_command().begin(), request.worker_command().end());
  if (argv.empty()) return Status::InvalidArgument("empty worker command");
  std::map<std::string, std::string> env(request.env().begin(), request.env().end());
  WorkerOutput::Sink sink;
  if (output_.on_output) {
    sink = [this, actor_id = request.actor_id()](OutputBatch batch) {
      proto::WorkerOutput out;
      out.set_actor_id(actor_id);
      out.set_pid(batch.pid);
      out.set_name(std::move(batch.name));
      out.set_node_ip(output_.node_ip);
      out.set_is_stderr(batch.is_stderr);
      for (auto& line : batch.lines) out.add_lines(std::move(line));
      output_.on_output(std::move(out));
    };
  }
  auto worker_hex = WorkerId::FromBinary(request.worker_id());
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<WorkerOutput> output,
                         WorkerOutput::Create(loop_,
                                              {.log_dir = output_.log_dir,
                                               .worker_id = worker_hex.ok() ? worker_hex->Hex()
                                                                            : "unknown",
                                               .name = request.display_name()},
                                              std::move(sink)));
  FERRY_ASSIGN_OR_RETURN(ChildProcess child,
                         spawner_.Spawn(argv, env,
                                        {output->stdout_write_fd(), output->stderr_write_fd()}));
  output->Start(child.pid);
  auto worker = std::make_shared<Worker>();
  worker->actor_id = request.actor_id();
  worker->child = child;
  worker->output = std::move(output);
  int fd = dup(child.pidfd);
  if (fd >= 0) {
    worker->exit_watch = std::make_unique<asio::posix::stream_descriptor>(loop_.context(), fd);
  }
  {
    MutexLock lock(mu_);
    if (shut_down_) {
      lock.Unlock();
      (void)KillAndReap(worker->child, Deadline::After(Config::Get().kill_grace));
      return Status::Unavailable("the node agent is shutting down");
    }
    workers_[worker->actor_id] = worker;
  }
  if (worker->exit_watch) {
    worker->exit_watch->async_wait(asio::posix::stream_descriptor::wait_read,
                                   [this, worker](const asio::error_code& ec) {
                                     if (ec == asio::error::operation_aborted) return;
                                     OnExit(worker);
                                   });
  }
  return child.pid;
}

void NodeAgent::OnExit(const std::shared_ptr<Worker>& worker) {
  int status;
  pid_t pid;
  bool stopped;
  {
    MutexLock lock(mu_);
    if (worker->exited) return;
    pid = worker->child.pid;
    stopped = worker->stopped;
    status = TryReap(worker->child);
    if (worker->child.pidfd >= 0) close(worker->child.pidfd);
    worker->child.pidfd = -1;
    worker->exited = true;
    auto it = workers_.find(worker->actor_id);
    if (it != workers_.end() && it->second == worker) workers_.erase(it);
  }
  std::string last_lines;
  if (worker->output) {
    worker->output->Finish();
    if (!stopped) last_lines = DescribeLastLines(worker->output->Tail());
    worker->output.reset();
  }
  on_exit_(worker->actor_id,
           "the actor's worker process (pid " + std::to_string(pid) + ") " +
               (status >= 0 ? DescribeWaitStatus(status) : std::string("exited")) + last_lines);
}

void NodeAgent::Stop(const std::string& actor_id) {
  MutexLock lock(mu_);
  auto it = workers_.find(actor_id);
  if (it != workers_.end() && !it->second->exited && it->second->child.pid > 0) {
    it->second->stopped = true;
    kill(it->second->child.pid, SIGKILL);  // the exit watch reports it
  }
}

size_t NodeAgent::NumLiveWorkers() {
  MutexLock lock(mu_);
  return workers_.size();
}

std::vector<int> NodeAgent::WorkerPids() {
  MutexLock lock(mu_);
  std::vector<int> pids;
  for (auto& [id, w] : workers_) pids.push_back(w->child.pid);
  return pids;
}

void NodeAgent::Shutdown() {
  std::vector<std::shared_ptr<Worker>> all;
  {
    MutexLock lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
    for (auto& [id, w] : workers_) {
      w->exited = true;  // no on_exit from here on
      all.push_back(w);
    }
    workers_.clear();
  }
  // Kill all first, then reap: the deaths overlap.
  for (auto& w : all) {
    if (w->child.pid > 0) kill(w->child.pid, SIGKILL);
  }
  Deadline deadline = Deadline::After(Config::Get().kill_grace + std::chrono::seconds(5));
  for (auto& w : all) {
    Status s = KillAndReap(w->child, deadline);
    if (!s.ok()) FERRY_LOG(ERROR) << s;
  }
  FinishOutputs(std::move(all));
  // The exit watches are cancelled by the io loop's teardown or fire with
  // `exited` set; either way on_exit stays quiet.
}

void NodeAgent::FinishOutputs(std::vector<std::shared_ptr<Worker>> workers) {
  // What the workers printed before they were killed still reaches the
  // sink; their outputs belong to the io thread.
  auto finish = [workers] {
    for (auto& w : workers) {
      if (!w->output) continue;
      w->output->Finish();
      w->output.reset();
    }
  };
  if (loop_.InLoopThread() || !loop_.Running()) {
    finish();
    return;
  }
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  loop_.Post([finish, done] {
    finish();
    done->set_value();
  });
  if (finished.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
    FERRY_LOG(WARNING) << "the io loop did not take the workers' last output within 2 s";
  }
}

}  // namespace ferry::cluster
