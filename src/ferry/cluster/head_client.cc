#include "ferry/cluster/head_client.h"

#include <unistd.h>

#include "ferry/cluster/node_service.h"
#include "ferry/common/id.h"

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
  proto::Hello hello;
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

}  // namespace ferry::cluster
