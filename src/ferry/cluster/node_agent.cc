#include "ferry/cluster/node_agent.h"

#include <signal.h>
#include <unistd.h>

#include <asio.hpp>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"

namespace ferry::cluster {

struct NodeAgent::Worker {
  std::string actor_id;
  ChildProcess child;
  bool exited = false;
  std::unique_ptr<asio::posix::stream_descriptor> exit_watch;
};

NodeAgent::NodeAgent(rpc::IoLoop& loop, ExitCallback on_exit)
    : loop_(loop), on_exit_(std::move(on_exit)) {}

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
  FERRY_ASSIGN_OR_RETURN(ChildProcess child, spawner_.Spawn(argv, env));
  auto worker = std::make_shared<Worker>();
  worker->actor_id = request.actor_id();
  worker->child = child;
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
  {
    MutexLock lock(mu_);
    if (worker->exited) return;
    pid = worker->child.pid;
    status = TryReap(worker->child);
    if (worker->child.pidfd >= 0) close(worker->child.pidfd);
    worker->child.pidfd = -1;
    worker->exited = true;
    auto it = workers_.find(worker->actor_id);
    if (it != workers_.end() && it->second == worker) workers_.erase(it);
  }
  on_exit_(worker->actor_id,
           "the actor's worker process (pid " + std::to_string(pid) + ") " +
               (status >= 0 ? DescribeWaitStatus(status) : std::string("exited")));
}

void NodeAgent::Stop(const std::string& actor_id) {
  MutexLock lock(mu_);
  auto it = workers_.find(actor_id);
  if (it != workers_.end() && !it->second->exited && it->second->child.pid > 0) {
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
  // The exit watches are cancelled by the io loop's teardown or fire with
  // `exited` set; either way on_exit stays quiet.
}

}  // namespace ferry::cluster
