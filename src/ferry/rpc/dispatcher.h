// Dispatcher: the table method -> handler that serves incoming requests and
// one-way messages of one or more Channels.
//
// Lifecycle: Register() every handler, then Freeze(); Channels, Server and
// Connect freeze the dispatcher they are given, so registering after serving
// started is a programming error (FERRY_CHECK). Once frozen the table is
// immutable and read without a lock. A method without a handler gets an
// Unimplemented error reply (one-way: logged and dropped).
//
// THREAD CONTRACT: Register/Freeze from one thread before serving; Dispatch
// runs on the io thread of the Channel that received the frame, and so do the
// handlers. Handlers must not block: keep the Responder and reply later from
// another thread for anything slow. `payload` is valid only during the call.
//
//   auto dispatcher = std::make_shared<Dispatcher>();
//   dispatcher->Register(proto::KV_GET, [&](const std::shared_ptr<Channel>& ch,
//                                           std::string_view payload, Responder r) {
//     proto::KvGet req; req.ParseFromArray(payload.data(), payload.size());
//     r.Reply(kv.Get(req)); });
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "ferry/rpc/responder.h"

namespace ferry::rpc {

class Channel;

class Dispatcher {
 public:
  using Handler = std::function<void(const std::shared_ptr<Channel>& channel,
                                     std::string_view payload, Responder responder)>;

  Dispatcher() = default;
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Sets the handler of `method`, replacing any earlier one. Before Freeze().
  void Register(uint16_t method, Handler handler);
  // Makes the table immutable. Idempotent.
  void Freeze() { frozen_.store(true, std::memory_order_release); }
  bool frozen() const { return frozen_.load(std::memory_order_acquire); }

  // Runs the handler of `method`. `responder` is empty for one-way messages.
  // Called by Channel on its io thread.
  void Dispatch(const std::shared_ptr<Channel>& channel, uint16_t method, std::string_view payload,
                Responder responder) const;

 private:
  // Indexed by method number (methods are small dense integers).
  std::vector<Handler> handlers_;
  std::atomic<bool> frozen_{false};
};

}  // namespace ferry::rpc
