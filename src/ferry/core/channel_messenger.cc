#include "ferry/core/channel_messenger.h"

#include <google/protobuf/message_lite.h>

#include "ferry/common/config.h"
#include "ferry/rpc/channel.h"

namespace ferry::core {

void ChannelMessenger::Call(const std::string& address, uint16_t method,
                            std::shared_ptr<const google::protobuf::MessageLite> request,
                            ReplyFn done) {
  if (auto channel = channels_.Peek(address)) {
    channel->Call(method, *request, std::move(done));
    return;
  }
  auto shared_done = std::make_shared<ReplyFn>(std::move(done));
  bool posted = background_.Post([this, address, method, request, shared_done] {
    auto channel = channels_.Get(address, Deadline::After(Config::Get().rpc_connect_timeout));
    if (!channel.ok()) {
      (*shared_done)(
          Status::Unavailable(address + " is unreachable: " + channel.status().message()), {});
      return;
    }
    (*channel)->Call(method, *request, *shared_done);
  });
  if (!posted) (*shared_done)(Status::Unavailable("ferry is shutting down"), {});
}

StatusOr<std::string> ChannelMessenger::CallSync(const std::string& address, uint16_t method,
                                                 const google::protobuf::MessageLite& request,
                                                 Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(auto channel, channels_.Get(address, deadline));
  return channel->CallSync(method, request, deadline);
}

void ChannelMessenger::Notify(const std::string& address, uint16_t method,
                              const google::protobuf::MessageLite& message) {
  // Connected already (the usual case): send from this thread, which saves
  // waking the background thread once per message.
  if (auto channel = channels_.Peek(address)) {
    channel->Notify(method, message);
    return;
  }
  std::shared_ptr<google::protobuf::MessageLite> copy(message.New());
  copy->CheckTypeAndMergeFrom(message);
  // May run on the io thread: the connect must not.
  background_.Post([this, address, method, copy] {
    auto channel = channels_.Get(address, Deadline::After(Config::Get().rpc_connect_timeout));
    if (!channel.ok()) return;  // the peer is gone, and what the message was about with it
    (*channel)->Notify(method, *copy);
  });
}

}  // namespace ferry::core
