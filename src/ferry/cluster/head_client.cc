#include "ferry/cluster/head_client.h"

#include <unistd.h>

#include <condition_variable>

#include "ferry/cluster/node_service.h"
#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/rpc/connect.h"

namespace ferry::cluster {

StatusOr<std::unique_ptr<HeadClient>> HeadClient::Connect(const std::string& address,
                                                          const std::string& token) {
  std::string rpc_address = address;
  if (address.rfind("unix:", 0) != 0) {
    FERRY_ASSIGN_OR_RETURN(rpc_address, HeadTcpAddress(address));
  }
  std::unique_ptr<HeadClient> client(new HeadClient());
  client->loop_ = std::make_unique<rpc::IoLoop>("ferry-head-client");
  client->loop_->Start();
  proto::Hello& hello = client->hello_;
  hello.set_token(token);
  hello.set_worker_id(WorkerId::Random().Binary());
  hello.set_pid(getpid());
  FERRY_ASSIGN_OR_RETURN(client->channel_,
                         ConnectToHead(*client->loop_, rpc_address, hello, nullptr));
  return client;
}

HeadClient::~HeadClient() {
  if (channel_) channel_->Close();
  if (loop_) {
    loop_->Stop();
    loop_->Join();
  }
}

StatusOr<std::vector<proto::NodeInfo>> HeadClient::Nodes(Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(std::string payload,
                         channel_->CallSync(proto::GET_NODES, proto::Empty(), deadline));
  proto::NodeList list;
  if (!list.ParseFromString(payload)) return Status::Internal("malformed NodeList");
  return std::vector<proto::NodeInfo>(list.nodes().begin(), list.nodes().end());
}

StatusOr<std::vector<proto::ActorInfo>> HeadClient::Actors(Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(std::string payload,
                         channel_->CallSync(proto::LIST_ACTORS, proto::Empty(), deadline));
  proto::ActorList list;
  if (!list.ParseFromString(payload)) return Status::Internal("malformed ActorList");
  return std::vector<proto::ActorInfo>(list.actors().begin(), list.actors().end());
}

StatusOr<std::vector<proto::ProcessInfo>> HeadClient::Processes(Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(std::string payload,
                         channel_->CallSync(proto::LIST_PROCESSES, proto::Empty(), deadline));
  proto::ProcessList list;
  if (!list.ParseFromString(payload)) return Status::Internal("malformed ProcessList");
  return std::vector<proto::ProcessInfo>(list.processes().begin(), list.processes().end());
}

namespace {

// The replies of one States() call; shared with the io thread's callbacks,
// which may outlive the call when it gives up at the deadline.
struct Gather {
  Mutex mu;
  std::condition_variable cv;
  std::vector<StatusOr<proto::ProcessState>> results FERRY_GUARDED_BY(mu);
  std::vector<std::shared_ptr<rpc::Channel>> channels FERRY_GUARDED_BY(mu);
  size_t left FERRY_GUARDED_BY(mu) = 0;

  void Finish(size_t i, StatusOr<proto::ProcessState> result) FERRY_EXCLUDES(mu) {
    MutexLock lock(mu);
    results[i] = std::move(result);
    if (--left == 0) cv.notify_all();
  }
};

std::string Describe(const proto::ProcessInfo& p) {
  return "pid " + std::to_string(p.pid()) + " at " + p.address();
}

}  // namespace

std::vector<StatusOr<proto::ProcessState>> HeadClient::States(
    const std::vector<proto::ProcessInfo>& processes, const proto::StateRequest& request,
    Deadline deadline) {
  auto gather = std::make_shared<Gather>();
  {
    MutexLock lock(gather->mu);
    gather->left = processes.size();
    for (const proto::ProcessInfo& p : processes) {
      gather->results.push_back(
          Status::DeadlineExceeded("no answer from " + Describe(p) + " in time"));
    }
  }
  for (size_t i = 0; i < processes.size(); ++i) {
    const std::string who = Describe(processes[i]);
    rpc::ConnectAsync(
        *loop_, processes[i].address(), hello_, nullptr, deadline,
        [gather, i, request, who](StatusOr<std::shared_ptr<rpc::Channel>> channel) {
          if (!channel.ok()) {
            gather->Finish(i, channel.status().WithContext("asking " + who));
            return;
          }
          {
            MutexLock lock(gather->mu);
            gather->channels.push_back(*channel);
          }
          (*channel)->Call(
              proto::GET_STATE, request, [gather, i, who](Status s, std::string_view reply) {
                proto::ProcessState state;
                if (s.ok() && !state.ParseFromArray(reply.data(), static_cast<int>(reply.size()))) {
                  s = Status::Internal("malformed ProcessState");
                }
                if (!s.ok()) {
                  gather->Finish(i, s.WithContext("asking " + who));
                } else {
                  gather->Finish(i, std::move(state));
                }
              });
        });
  }
  std::vector<StatusOr<proto::ProcessState>> results;
  std::vector<std::shared_ptr<rpc::Channel>> channels;
  {
    MutexLock lock(gather->mu);
    auto done = [&]() FERRY_REQUIRES(gather->mu) { return gather->left == 0; };
    if (deadline.IsNever()) {
      gather->cv.wait(lock.native(), done);
    } else {
      gather->cv.wait_until(lock.native(), deadline.time_point(), done);
    }
    results = gather->results;
    channels.swap(gather->channels);
  }
  for (auto& channel : channels) channel->Close();
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) results[i]->set_address(processes[i].address());
  }
  return results;
}

}  // namespace ferry::cluster
