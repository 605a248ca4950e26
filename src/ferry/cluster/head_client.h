// HeadClient: reads a Head's tables (nodes, actors, processes) over a
// connection of its own, without joining the session, and asks the
// session's processes what they hold (GET_STATE): what the `ferry` command
// uses for `ferry status`, `ferry list` and `ferry memory`. It reaches an
// embedded session's Head at the driver's socket (the session file,
// session_file.h) and a cluster's at IP:PORT, with the token either way.
//
// Thread contract: thread-safe (calls may overlap). Each call waits for its
// replies until `deadline`.
//
//   FERRY_ASSIGN_OR_RETURN(auto head, HeadClient::Connect("10.0.0.1:6379", token));
//   FERRY_ASSIGN_OR_RETURN(auto actors, head->Actors(Deadline::After(5s)));
//   FERRY_ASSIGN_OR_RETURN(auto processes, head->Processes(deadline));
//   auto states = head->States(processes, {}, deadline);  // one per process
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/channel.h"
#include "ferry/rpc/io_loop.h"
#include "ferry/status.h"

namespace ferry::cluster {

class HeadClient {
 public:
  // `address`: "IP:PORT" (or "tcp:IP:PORT") of a cluster's Head, or an rpc
  // address ("unix:@...") of an embedded session's driver. The errors are
  // ConnectToHead's: nothing there, a wrong token, no answer.
  static StatusOr<std::unique_ptr<HeadClient>> Connect(const std::string& address,
                                                       const std::string& token);
  ~HeadClient();
  HeadClient(const HeadClient&) = delete;
  HeadClient& operator=(const HeadClient&) = delete;

  StatusOr<std::vector<proto::NodeInfo>> Nodes(Deadline deadline);
  StatusOr<std::vector<proto::ActorInfo>> Actors(Deadline deadline);
  // The drivers and running workers, with the addresses they answer at.
  StatusOr<std::vector<proto::ProcessInfo>> Processes(Deadline deadline);
  // Asks every one of `processes` at once what it holds, over connections
  // opened for this call and closed after it. One result per process, in
  // order: its state, or why it gave none (it exited meanwhile: Unavailable;
  // no answer by `deadline`: DeadlineExceeded).
  std::vector<StatusOr<proto::ProcessState>> States(
      const std::vector<proto::ProcessInfo>& processes, const proto::StateRequest& request,
      Deadline deadline);

 private:
  HeadClient() = default;
  std::unique_ptr<rpc::IoLoop> loop_;
  proto::Hello hello_;
  std::shared_ptr<rpc::Channel> channel_;
};

}  // namespace ferry::cluster
