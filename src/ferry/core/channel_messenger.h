// ChannelMessenger: the PeerMessenger of a real process, over the process's
// ChannelCache.
//
// A peer already connected is written to from the calling thread; a first
// contact connects on the background WorkQueue (a connect blocks, and callers
// may be on the io thread) within FERRY_RPC_CONNECT_TIMEOUT_S.
//
// THREAD CONTRACT: thread-safe (see PeerMessenger). The cache and the queue
// must outlive it; after the queue is closed, Call answers Unavailable and
// Notify drops the message.
//
//   ChannelMessenger messenger(channels, background);
//   messenger.Notify(address, proto::FREE_OBJECTS, message);
#pragma once

#include "ferry/common/work_queue.h"
#include "ferry/core/peer_messenger.h"
#include "ferry/rpc/channel_cache.h"

namespace ferry::core {

class ChannelMessenger : public PeerMessenger {
 public:
  ChannelMessenger(rpc::ChannelCache& channels, WorkQueue& background)
      : channels_(channels), background_(background) {}

  void Call(const std::string& address, uint16_t method,
            std::shared_ptr<const google::protobuf::MessageLite> request, ReplyFn done) override;
  StatusOr<std::string> CallSync(const std::string& address, uint16_t method,
                                 const google::protobuf::MessageLite& request,
                                 Deadline deadline) override;
  void Notify(const std::string& address, uint16_t method,
              const google::protobuf::MessageLite& message) override;

 private:
  rpc::ChannelCache& channels_;
  WorkQueue& background_;
};

}  // namespace ferry::core
