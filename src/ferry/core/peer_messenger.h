// PeerMessenger: how a component of the core talks to another ferry process
// by address, without knowing about sockets or connection caches.
//
// It is the seam between the core's protocols (direct tensor transport, the
// owner's frees) and the rpc layer: CoreWorker gives them a ChannelMessenger
// (cached channels, connects off the io thread); unit tests give them an
// in-process fake that hands each request to another component directly, so a
// protocol between several processes is tested in one, in a fixed order.
//
// THREAD CONTRACT: implementations are thread-safe. Call and Notify never
// block the calling thread (they may run on the io thread); `done` fires
// exactly once, on any thread, never while the messenger holds a lock.
// CallSync blocks (never call it on the io thread).
//
//   messenger.Call(producer_address, proto::SEND_TENSORS, request,
//                  [](Status s, std::string_view reply) { ... });
//   messenger.Notify(producer_address, proto::FREE_OBJECTS, free_message);
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ferry/common/clock.h"
#include "ferry/status.h"

namespace google::protobuf {
class MessageLite;
}  // namespace google::protobuf

namespace ferry::core {

class PeerMessenger {
 public:
  // The reply's status and, when OK, its serialized payload (valid only
  // during the call).
  using ReplyFn = std::function<void(Status, std::string_view)>;

  virtual ~PeerMessenger() = default;

  // Sends `request` as `method` to the process at `address`. An unreachable
  // peer is Unavailable; so is a messenger that is shutting down.
  virtual void Call(const std::string& address, uint16_t method,
                    std::shared_ptr<const google::protobuf::MessageLite> request, ReplyFn done) = 0;

  // Call, waiting for the reply until `deadline` (DeadlineExceeded).
  virtual StatusOr<std::string> CallSync(const std::string& address, uint16_t method,
                                         const google::protobuf::MessageLite& request,
                                         Deadline deadline) = 0;

  // A one-way message; dropped when the peer is unreachable.
  virtual void Notify(const std::string& address, uint16_t method,
                      const google::protobuf::MessageLite& message) = 0;
};

}  // namespace ferry::core
