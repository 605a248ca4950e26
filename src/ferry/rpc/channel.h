// Channel: one framed, bidirectional request/reply connection over a
// connected stream socket (Unix domain or TCP), owned by an IoLoop.
//
// Both ends are symmetric: either side may Call() (a request that gets exactly
// one reply), Notify() (one-way), and serve the other side's requests through
// its Dispatcher. Frames are frame.h's; replies are matched to calls by
// request id, so any number of calls may be in flight (pipelined, in order).
//
// Lifecycle: made by Connect() (client side, after the handshake), by Server
// (accepted side, after the handshake), or by Adopt() (an already-trusted
// socket such as a socketpair end). It then reads until Close(), peer EOF, an
// I/O error or a malformed frame; at that moment every pending call's
// callback fires once with Unavailable and the close callback fires once. A
// live channel is kept alive by its own pending read, so dropping the last
// user reference does not close it: call Close(). Close channels before
// stopping their IoLoop (callbacks queued on a stopped loop never run).
//
// THREAD CONTRACT: every public method is thread-safe. All callbacks (reply,
// close, handlers) run on the loop's io thread and never while a Channel lock
// is held, so they may call back into the Channel. CallSync() blocks and must
// not run on the io thread (FERRY_CHECK). Sending from another thread does
// not hop through the io thread while the socket is idle: the frame is
// written with a non-blocking send(2) under the channel's mutex, and only
// the unsent rest of a partial write is handed to the io thread.
//
//   FERRY_ASSIGN_OR_RETURN(auto ch, Connect(loop, "unix:@head", hello, dispatcher, deadline));
//   ch->SetCloseCallback([](Status why) { FERRY_LOG(INFO) << "head gone: " << why; });
//   FERRY_ASSIGN_OR_RETURN(std::string bytes, ch->CallSync(proto::KV_GET, request, deadline));
//   ch->Call(proto::PUSH_TASK, spec, [](Status s, std::string_view reply) { /* io thread */ });
//   ch->Close();
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/frame.h"
#include "ferry/rpc/responder.h"
#include "ferry/status.h"

namespace ferry::rpc {

class Dispatcher;
class IoLoop;

struct ChannelOptions {
  // Largest payload accepted from the peer and sent to it; a larger incoming
  // frame closes the channel, a larger outgoing one fails its call.
  uint32_t max_payload = kDefaultMaxPayload;
  // CallSync busy-waits this long for the reply before sleeping on a
  // condition variable, saving a futex sleep/wake when the peer is quick.
  // Default 0 (off): on a loaded 2-core host the spinner steals the core the
  // reply needs (measured: slower median for deferred replies).
  // FERRY_RPC_SYNC_SPIN_US overrides the default.
  std::chrono::microseconds sync_spin = DefaultSyncSpin();

  static std::chrono::microseconds DefaultSyncSpin();
};

class Channel : public std::enable_shared_from_this<Channel> {
 public:
  // `status` is OK with the reply's serialized bytes (valid only during the
  // call), the remote handler's error, or Unavailable if the channel closed
  // first. Fires exactly once, on the io thread.
  using ReplyCallback = std::function<void(Status status, std::string_view payload)>;
  // Why the channel closed: OK for a local Close(), Unavailable for peer
  // EOF or I/O errors, the decoder's error for a malformed stream.
  using CloseCallback = std::function<void(Status why)>;

  // Takes ownership of `fd`, a connected stream socket, and starts reading.
  // No handshake is done: use it for sockets that are trusted by
  // construction (socketpair before fork). `peer_name` names the peer in
  // error messages. On error `fd` is closed.
  static StatusOr<std::shared_ptr<Channel>> Adopt(IoLoop& loop, int fd,
                                                  std::shared_ptr<Dispatcher> dispatcher,
                                                  std::string peer_name,
                                                  ChannelOptions options = {});

  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Sends a request; `callback` fires exactly once (see ReplyCallback).
  void Call(uint16_t method, const google::protobuf::MessageLite& request, ReplyCallback callback)
      FERRY_EXCLUDES(mu_);
  // Call() unless the channel is already closed: then returns false and
  // drops `callback` unfired, so the caller knows the request never left
  // (and may send it elsewhere). True: `callback` fires exactly once.
  bool TryCall(uint16_t method, const google::protobuf::MessageLite& request,
               ReplyCallback callback) FERRY_EXCLUDES(mu_);
  // Sends a request and waits for its reply's bytes. DeadlineExceeded if no
  // reply came by `deadline` (a late reply is then dropped). Not on the io
  // thread.
  StatusOr<std::string> CallSync(uint16_t method, const google::protobuf::MessageLite& request,
                                 Deadline deadline) FERRY_EXCLUDES(mu_);
  // Sends a one-way message. Dropped (logged at debug level) if closed.
  void Notify(uint16_t method, const google::protobuf::MessageLite& message) FERRY_EXCLUDES(mu_);

  // Closes the connection; returns at once (the socket is closed and the
  // callbacks fire on the io thread). Idempotent.
  void Close() FERRY_EXCLUDES(mu_);
  // True once Close() was called or the channel failed.
  bool IsClosed() const FERRY_EXCLUDES(mu_);
  // Sets the callback fired once when the channel closes; if it already
  // closed, `callback` is posted to the io thread at once. Replaces an
  // earlier callback that has not fired.
  void SetCloseCallback(CloseCallback callback) FERRY_EXCLUDES(mu_);
  // Adds a callback fired once when the channel closes, beside the one
  // SetCloseCallback sets (for components that watch a peer they did not
  // connect to); if it already closed, `callback` is posted at once.
  void AddCloseCallback(CloseCallback callback) FERRY_EXCLUDES(mu_);

  // The peer's Hello (server side) or a Hello built from its HelloReply
  // (client side: worker_id, pid, and the address connected to). Empty for
  // adopted channels. Immutable once the channel is handed out.
  const proto::Hello& peer() const { return peer_; }
  // A human name for the peer, for error messages.
  std::string peer_name() const FERRY_EXCLUDES(mu_);
  IoLoop& loop() const { return loop_; }

 private:
  friend class Responder;
  friend class Server;
  friend class ConnectOperation;
  struct IoState;
  struct PassKey {
    explicit PassKey() = default;
  };

  // The first frame of an accepted connection goes here instead of to the
  // dispatcher (the server's handshake). `responder` is empty for one-way.
  using FirstFrameHook =
      std::function<void(const std::shared_ptr<Channel>& channel, const FrameHeader& header,
                         std::string_view payload, Responder responder)>;

 public:
  // Use Adopt(), Connect() or Server. Public only for std::make_shared.
  Channel(PassKey, IoLoop& loop, std::shared_ptr<Dispatcher> dispatcher, std::string peer_name,
          ChannelOptions options);

 private:
  // Wraps `fd` (closing it on error) without starting to read.
  static StatusOr<std::shared_ptr<Channel>> Create(IoLoop& loop, int fd,
                                                   std::shared_ptr<Dispatcher> dispatcher,
                                                   std::string peer_name, ChannelOptions options);
  // Must be called before Start().
  void SetFirstFrameHook(FirstFrameHook hook);
  // Begins reading (posts to the io thread). Once.
  void Start();
  // Handshake results; io thread, before the channel is handed out.
  void SetPeer(proto::Hello peer, std::string peer_name) FERRY_EXCLUDES(mu_);
  // Closes once every queued byte is written (or at once if none). Io thread.
  void CloseAfterFlush(Status why);

  // Registers `callback` and sends the request frame; the callback is posted
  // with an error if the channel is closed or the request cannot be encoded,
  // except that with `closed` set, a closed channel sets *closed and drops
  // the callback. Returns the request id (0 when nothing was sent).
  uint64_t StartCall(uint16_t method, const google::protobuf::MessageLite& request,
                     ReplyCallback callback, bool* closed = nullptr) FERRY_EXCLUDES(mu_);
  // Removes a pending call without firing it (CallSync timeout).
  void AbandonCall(uint64_t request_id) FERRY_EXCLUDES(mu_);
  // Responder's path: sends a reply or error-reply frame; dropped if closed.
  void SendReply(uint16_t method, uint64_t request_id, const google::protobuf::MessageLite* reply,
                 const Status& error) FERRY_EXCLUDES(mu_);
  // Queues or directly writes one encoded frame. False if closed.
  bool SendFrame(std::string frame) FERRY_EXCLUDES(mu_);
  bool SendFrameLocked(std::string frame) FERRY_REQUIRES(mu_);
  void PostToLoop(std::function<void()> fn);
  std::string ClosedMessage() const FERRY_REQUIRES(mu_);

  // Io thread only.
  void DoRead();
  void OnRead(const std::error_code& ec, size_t n);
  void HandleFrame(const Frame& frame);
  void DoWrite();
  void OnWrite(const std::error_code& ec, size_t n);
  void CloseNow(Status why);

  // Const after construction.
  IoLoop& loop_;
  const std::shared_ptr<Dispatcher> dispatcher_;
  const ChannelOptions options_;
  int fd_ = -1;        // set by Create(); used for direct sends under mu_ until closing_
  proto::Hello peer_;  // set during the handshake, before the channel is shared
  // Confined to the io thread (socket, decoder, write buffers being written).
  std::unique_ptr<IoState> io_;

  mutable Mutex mu_;
  std::string peer_name_ FERRY_GUARDED_BY(mu_);
  bool closing_ FERRY_GUARDED_BY(mu_) = false;
  // Set once CloseNow ran: the reason given to late close callbacks.
  bool closed_ FERRY_GUARDED_BY(mu_) = false;
  Status close_reason_ FERRY_GUARDED_BY(mu_);
  CloseCallback close_callback_ FERRY_GUARDED_BY(mu_);
  std::vector<CloseCallback> extra_close_callbacks_ FERRY_GUARDED_BY(mu_);
  uint64_t next_request_id_ FERRY_GUARDED_BY(mu_) = 1;
  std::unordered_map<uint64_t, ReplyCallback> pending_ FERRY_GUARDED_BY(mu_);
  // Frames not yet fully written, oldest first; front_offset_ bytes of the
  // front one are already sent. Elements never move (deque push_back keeps
  // references), so the io thread writes from them outside the lock.
  std::deque<std::string> write_queue_ FERRY_GUARDED_BY(mu_);
  size_t front_offset_ FERRY_GUARDED_BY(mu_) = 0;
  // True while the io thread owns the socket's write side (an async_write is
  // in flight or about to start); other threads then only append to the queue.
  bool write_in_flight_ FERRY_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::rpc
