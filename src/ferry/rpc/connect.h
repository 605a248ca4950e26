// Connect: opens a Channel to a Server and performs the Hello handshake.
//
// The Hello (cluster token, own worker id, own listen address, pid) is the
// first frame sent; the channel is returned once the server's HelloReply
// arrived, with peer() holding the server's worker_id and pid. Requests the
// server sends over the channel go to `dispatcher` (may be null: then they
// get Unimplemented).
//
// Errors: InvalidArgument (bad address), Unavailable (nothing listens, or the
// server dropped the connection), PermissionDenied (the server rejected the
// Hello), DeadlineExceeded (connect + handshake did not finish in time).
//
// THREAD CONTRACT: Connect() blocks and must not run on the loop's io thread
// (FERRY_CHECK); ConnectAsync() may run anywhere, and its callback runs
// exactly once on the io thread. The loop must be started.
//
//   proto::Hello hello;
//   hello.set_token(token); hello.set_pid(getpid()); hello.set_address(my_address);
//   FERRY_ASSIGN_OR_RETURN(std::shared_ptr<Channel> ch,
//       Connect(loop, "unix:@ferry-head", hello, dispatcher, Deadline::After(10s)));
//   ch->Notify(proto::ACTOR_READY, ready);
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "ferry/common/clock.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/channel.h"
#include "ferry/status.h"

namespace ferry::rpc {

class Dispatcher;
class IoLoop;

StatusOr<std::shared_ptr<Channel>> Connect(IoLoop& loop, const std::string& address,
                                           const proto::Hello& hello,
                                           std::shared_ptr<Dispatcher> dispatcher,
                                           Deadline deadline, ChannelOptions options = {});

using ConnectCallback = std::function<void(StatusOr<std::shared_ptr<Channel>> channel)>;
void ConnectAsync(IoLoop& loop, const std::string& address, const proto::Hello& hello,
                  std::shared_ptr<Dispatcher> dispatcher, Deadline deadline, ConnectCallback done,
                  ChannelOptions options = {});

}  // namespace ferry::rpc
