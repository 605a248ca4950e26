// Responder: the one-shot right to answer one incoming request.
//
// A Dispatcher hands a Responder to the handler of every request. The handler
// may answer at once or keep (move) the Responder and answer later from any
// thread: "reply when the object becomes ready" is the normal case, so the
// io thread is never blocked waiting for work to finish.
//
// Lifecycle: exactly one reply goes out per request. Reply() or ReplyError()
// sends it and empties the Responder; later calls are no-ops. A Responder
// destroyed without replying sends an Internal error reply, so a caller never
// hangs on a forgotten request. One-way messages get an empty Responder whose
// calls do nothing. The Responder keeps its Channel object alive (not the
// connection: if the channel closed meanwhile the reply is dropped).
//
// THREAD CONTRACT: a value; move it between threads freely, but do not call
// one Responder from two threads at once. Reply/ReplyError are thread-safe
// with respect to the Channel (they take its write lock only briefly).
//
//   dispatcher->Register(proto::GET_OBJECT, [store](auto& ch, std::string_view payload,
//                                                   Responder r) {
//     store->OnReady(ParseId(payload), [r = std::move(r)](const Value& v) mutable {
//       r.Reply(v.ToProto());                      // from whatever thread runs OnReady
//     });
//   });
#pragma once

#include <cstdint>
#include <memory>

#include "ferry/status.h"

namespace google::protobuf {
class MessageLite;
}  // namespace google::protobuf

namespace ferry::rpc {

class Channel;

class Responder {
 public:
  // An empty Responder (what one-way messages get).
  Responder() = default;
  Responder(Responder&& other) noexcept;
  Responder& operator=(Responder&& other) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  // Sends an Internal error reply if no reply was sent.
  ~Responder();

  // Sends `reply` as the answer. A reply that cannot be encoded (larger than
  // the channel's payload limit) is turned into an error reply instead.
  void Reply(const google::protobuf::MessageLite& reply);
  // Sends `status` (must not be OK) as an error reply; the caller's callback
  // receives it as its Status.
  void ReplyError(const Status& status);

  // True until a reply was sent (false for one-way messages and moved-from
  // Responders).
  bool pending() const { return channel_ != nullptr; }
  uint16_t method() const { return method_; }

 private:
  friend class Channel;
  Responder(std::shared_ptr<Channel> channel, uint16_t method, uint64_t request_id);

  std::shared_ptr<Channel> channel_;
  uint16_t method_ = 0;
  uint64_t request_id_ = 0;
};

}  // namespace ferry::rpc
