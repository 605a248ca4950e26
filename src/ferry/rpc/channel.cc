#include "ferry/rpc/channel.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

#include <asio/generic/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"

namespace ferry::rpc {
namespace {

// Each read asks the kernel for at least this much room.
constexpr size_t kMinReadBytes = 64 * 1024;
// One async_write gathers at most this many queued frames.
constexpr size_t kMaxGather = 64;

Status ErrnoStatus(const std::string& what, int err) {
  return Status::Unavailable(what + ": " + std::strerror(err));
}

}  // namespace

std::chrono::microseconds ChannelOptions::DefaultSyncSpin() {
  static const std::chrono::microseconds spin(EnvInt("FERRY_RPC_SYNC_SPIN_US", 0));
  return spin;
}

struct Channel::IoState {
  IoState(asio::io_context& ctx, uint32_t max_payload) : socket(ctx), decoder(max_payload) {}
  asio::generic::stream_protocol::socket socket;
  FrameDecoder decoder;
  FirstFrameHook first_frame_hook;
  bool started = false;
  bool closed = false;
  bool close_after_flush = false;
  Status close_after_flush_reason;
  std::vector<asio::const_buffer> write_buffers;
  size_t frames_in_write = 0;
  // Frames still queued at close. Kept until the channel dies because a
  // cancelled async_write may still hold pointers into them.
  std::deque<std::string> unsent_at_close;
};

Channel::Channel(PassKey, IoLoop& loop, std::shared_ptr<Dispatcher> dispatcher,
                 std::string peer_name, ChannelOptions options)
    : loop_(loop),
      dispatcher_(std::move(dispatcher)),
      options_(options),
      io_(std::make_unique<IoState>(loop.context(), options.max_payload)),
      peer_name_(std::move(peer_name)) {
  if (dispatcher_) dispatcher_->Freeze();
}

Channel::~Channel() = default;

StatusOr<std::shared_ptr<Channel>> Channel::Create(IoLoop& loop, int fd,
                                                   std::shared_ptr<Dispatcher> dispatcher,
                                                   std::string peer_name, ChannelOptions options) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  int type = 0;
  socklen_t type_len = sizeof(type);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0) {
    Status s = Status::InvalidArgument(std::string("not a socket: ") + std::strerror(errno));
    ::close(fd);
    return s;
  }
  if (type != SOCK_STREAM) {
    ::close(fd);
    return Status::InvalidArgument("not a stream socket");
  }
  int protocol = 0;
  if (addr.ss_family == AF_INET || addr.ss_family == AF_INET6) {
    protocol = IPPROTO_TCP;
    // Control messages are small and latency-bound: never wait for Nagle.
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  auto channel = std::make_shared<Channel>(PassKey(), loop, std::move(dispatcher),
                                           std::move(peer_name), options);
  asio::error_code ec;
  channel->io_->socket.assign(asio::generic::stream_protocol(addr.ss_family, protocol), fd, ec);
  if (ec) {
    ::close(fd);
    return Status::Internal("cannot register socket with the io loop: " + ec.message());
  }
  channel->fd_ = fd;
  return channel;
}

StatusOr<std::shared_ptr<Channel>> Channel::Adopt(IoLoop& loop, int fd,
                                                  std::shared_ptr<Dispatcher> dispatcher,
                                                  std::string peer_name, ChannelOptions options) {
  FERRY_ASSIGN_OR_RETURN(auto channel,
                         Create(loop, fd, std::move(dispatcher), std::move(peer_name), options));
  channel->Start();
  return channel;
}

void Channel::SetFirstFrameHook(FirstFrameHook hook) {
  FERRY_CHECK(!io_->started) << "SetFirstFrameHook after Start";
  io_->first_frame_hook = std::move(hook);
  // Until the first frame authenticates the peer, accept only a small one.
  io_->decoder.set_max_payload(std::min(kMaxFirstFramePayload, options_.max_payload));
}

void Channel::Start() {
  PostToLoop([self = shared_from_this()] {
    if (self->io_->started) return;
    self->io_->started = true;
    self->DoRead();
  });
}

void Channel::SetPeer(proto::Hello peer, std::string peer_name) {
  // Authenticated (the server calls this on its io thread, from the first
  // frame's hook): lift the first-frame bound.
  io_->decoder.set_max_payload(options_.max_payload);
  peer_ = std::move(peer);
  MutexLock lock(mu_);
  peer_name_ = std::move(peer_name);
}

std::string Channel::peer_name() const {
  MutexLock lock(mu_);
  return peer_name_;
}

std::string Channel::ClosedMessage() const { return "channel to " + peer_name_ + " is closed"; }

void Channel::PostToLoop(std::function<void()> fn) { loop_.Post(std::move(fn)); }

// ---------------------------------------------------------------- sending

uint64_t Channel::StartCall(uint16_t method, const google::protobuf::MessageLite& request,
                            ReplyCallback callback, bool* closed) {
  // The request id goes into the header, so encode with a placeholder and
  // patch it in under the lock (ids must be unique, not ordered).
  StatusOr<std::string> frame = EncodeFrame(method, FrameKind::kRequest, 0, request,
                                            options_.max_payload);
  Status error;
  uint64_t id = 0;
  {
    MutexLock lock(mu_);
    if (!frame.ok()) {
      error = frame.status().WithContext("request to " + peer_name_);
    } else if (closing_) {
      if (closed != nullptr) {
        *closed = true;
        return 0;  // `callback` is dropped unfired
      }
      error = Status::Unavailable(ClosedMessage());
    } else {
      id = next_request_id_++;
      FrameHeader header = DecodeFrameHeader(frame->data());
      header.request_id = id;
      EncodeFrameHeader(header, frame->data());
      // Registered before the bytes leave, so the reply always finds it.
      pending_.emplace(id, std::move(callback));
      SendFrameLocked(std::move(*frame));
      return id;
    }
  }
  PostToLoop([cb = std::move(callback), error = std::move(error)] { cb(error, {}); });
  return 0;
}

void Channel::Call(uint16_t method, const google::protobuf::MessageLite& request,
                   ReplyCallback callback) {
  StartCall(method, request, std::move(callback));
}

bool Channel::TryCall(uint16_t method, const google::protobuf::MessageLite& request,
                      ReplyCallback callback) {
  bool closed = false;
  StartCall(method, request, std::move(callback), &closed);
  return !closed;
}

namespace {
struct SyncCall {
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> done{false};
  bool sleeping = false;  // guarded by mu
  Status status;          // written before `done` is set
  std::string payload;
};

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

StatusOr<std::string> Channel::CallSync(uint16_t method,
                                        const google::protobuf::MessageLite& request,
                                        Deadline deadline) {
  FERRY_CHECK(!loop_.InLoopThread()) << "Channel::CallSync on the io thread would deadlock";
  {
    MutexLock lock(mu_);
    if (closing_) return Status::Unavailable(ClosedMessage());
  }
  auto call = std::make_shared<SyncCall>();
  uint64_t id = StartCall(method, request, [call](Status status, std::string_view payload) {
    std::lock_guard<std::mutex> lock(call->mu);
    call->status = std::move(status);
    if (call->status.ok()) call->payload.assign(payload.data(), payload.size());
    call->done.store(true, std::memory_order_release);
    if (call->sleeping) call->cv.notify_one();  // under the lock: the waiter may free `call`
  });
  // A reply usually comes within tens of microseconds. Spinning that long
  // first saves the futex sleep + wakeup (a context switch on each side).
  if (options_.sync_spin.count() > 0) {
    const auto spin_end = Clock::now() + options_.sync_spin;
    int n = 0;
    while (!call->done.load(std::memory_order_acquire)) {
      CpuRelax();
      if (++n % 64 == 0 && Clock::now() >= spin_end) break;
    }
  }
  std::unique_lock<std::mutex> lock(call->mu);
  auto ready = [&] { return call->done.load(std::memory_order_relaxed); };
  call->sleeping = true;
  if (deadline.IsNever()) {
    call->cv.wait(lock, ready);
  } else if (!call->cv.wait_until(lock, deadline.time_point(), ready)) {
    lock.unlock();
    if (id != 0) AbandonCall(id);
    return Status::DeadlineExceeded("no reply to method " + std::to_string(method) + " from " +
                                    peer_name() + " before the deadline");
  }
  if (!call->status.ok()) return call->status;
  return std::move(call->payload);
}

void Channel::AbandonCall(uint64_t request_id) {
  ReplyCallback dropped;  // destroyed outside the lock
  MutexLock lock(mu_);
  auto it = pending_.find(request_id);
  if (it == pending_.end()) return;
  dropped = std::move(it->second);
  pending_.erase(it);
}

void Channel::Notify(uint16_t method, const google::protobuf::MessageLite& message) {
  StatusOr<std::string> frame = EncodeFrame(method, FrameKind::kOneWay, 0, message,
                                            options_.max_payload);
  if (!frame.ok()) {
    FERRY_LOG(ERROR) << "dropping one-way message " << method << ": " << frame.status();
    return;
  }
  if (!SendFrame(std::move(*frame))) {
    FERRY_LOG(DEBUG) << "dropping one-way message " << method << ": channel closed";
  }
}

void Channel::SendReply(uint16_t method, uint64_t request_id,
                        const google::protobuf::MessageLite* reply, const Status& error) {
  StatusOr<std::string> frame = Status::Internal("unset");
  if (reply != nullptr) {
    frame = EncodeFrame(method, FrameKind::kReply, request_id, *reply, options_.max_payload);
  }
  if (reply == nullptr || !frame.ok()) {
    const Status& s = reply == nullptr ? error : frame.status();
    proto::StatusProto status;
    status.set_code(static_cast<int32_t>(s.code()));
    status.set_message(s.message());
    frame = EncodeFrame(method, FrameKind::kErrorReply, request_id, status);
    FERRY_CHECK(frame.ok()) << frame.status();
  }
  if (!SendFrame(std::move(*frame))) {
    FERRY_LOG(DEBUG) << "dropping reply to request " << request_id << ": channel closed";
  }
}

bool Channel::SendFrame(std::string frame) {
  MutexLock lock(mu_);
  if (closing_) return false;
  return SendFrameLocked(std::move(frame));
}

bool Channel::SendFrameLocked(std::string frame) {
  loop_.NoteActivity();  // an answer may follow: keep a polling io thread polling
  if (write_in_flight_) {
    // The io thread owns the write side; it drains the queue in order.
    write_queue_.push_back(std::move(frame));
    return true;
  }
  // Idle socket: write on the caller's thread, no io-thread hop.
  size_t sent = 0;
  while (sent < frame.size()) {
    ssize_t n = ::send(fd_, frame.data() + sent, frame.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    // Broken connection: close (on the io thread); pending calls, including
    // one that queued this frame, fail with Unavailable there.
    Status why = ErrnoStatus("write to " + peer_name_ + " failed", errno);
    closing_ = true;
    PostToLoop([self = shared_from_this(), why] { self->CloseNow(why); });
    return false;
  }
  if (sent == frame.size()) return true;
  write_queue_.push_back(std::move(frame));
  front_offset_ = sent;
  write_in_flight_ = true;
  PostToLoop([self = shared_from_this()] { self->DoWrite(); });
  return true;
}

void Channel::DoWrite() {
  IoState& io = *io_;
  if (io.closed) return;
  io.write_buffers.clear();
  {
    MutexLock lock(mu_);
    FERRY_CHECK(write_in_flight_ && !write_queue_.empty());
    size_t count = std::min(write_queue_.size(), kMaxGather);
    for (size_t i = 0; i < count; ++i) {
      const std::string& f = write_queue_[i];
      size_t skip = i == 0 ? front_offset_ : 0;
      io.write_buffers.emplace_back(f.data() + skip, f.size() - skip);
    }
    io.frames_in_write = count;
  }
  asio::async_write(io.socket, io.write_buffers,
                    [self = shared_from_this()](const std::error_code& ec, size_t n) {
                      self->OnWrite(ec, n);
                    });
}

void Channel::OnWrite(const std::error_code& ec, size_t /*n*/) {
  IoState& io = *io_;
  if (io.closed) return;
  if (ec) {
    CloseNow(Status::Unavailable("write to " + peer_name() + " failed: " + ec.message()));
    return;
  }
  std::deque<std::string> written;  // freed outside the lock
  bool more = false;
  {
    MutexLock lock(mu_);
    for (size_t i = 0; i < io.frames_in_write; ++i) {
      written.push_back(std::move(write_queue_.front()));
      write_queue_.pop_front();
    }
    front_offset_ = 0;
    more = !write_queue_.empty();
    if (!more) write_in_flight_ = false;  // back to direct sends
  }
  io.frames_in_write = 0;
  if (more) {
    DoWrite();
  } else if (io.close_after_flush) {
    CloseNow(io.close_after_flush_reason);
  }
}

// ---------------------------------------------------------------- receiving

void Channel::DoRead() {
  IoState& io = *io_;
  if (io.closed) return;
  std::span<char> tail = io.decoder.WritableTail(kMinReadBytes);
  io.socket.async_read_some(asio::buffer(tail.data(), tail.size()),
                            [self = shared_from_this()](const std::error_code& ec, size_t n) {
                              self->OnRead(ec, n);
                            });
}

void Channel::OnRead(const std::error_code& ec, size_t n) {
  IoState& io = *io_;
  if (io.closed) return;
  if (ec) {
    if (ec == asio::error::eof) {
      CloseNow(Status::Unavailable("connection closed by " + peer_name()));
    } else {
      CloseNow(Status::Unavailable("read from " + peer_name() + " failed: " + ec.message()));
    }
    return;
  }
  io.decoder.Commit(n);
  Frame frame;
  for (;;) {
    StatusOr<bool> next = io.decoder.Next(&frame);
    if (!next.ok()) {
      FERRY_LOG(WARNING) << "closing channel to " << peer_name()
                         << ": malformed stream: " << next.status();
      CloseNow(next.status().WithContext("malformed stream from " + peer_name()));
      return;
    }
    if (!*next) break;
    HandleFrame(frame);
    if (io.closed) return;
  }
  DoRead();
}

void Channel::HandleFrame(const Frame& frame) {
  const FrameHeader& h = frame.header;
  auto self = shared_from_this();
  switch (h.kind) {
    case FrameKind::kReply:
    case FrameKind::kErrorReply: {
      ReplyCallback callback;
      {
        MutexLock lock(mu_);
        auto it = pending_.find(h.request_id);
        if (it != pending_.end()) {
          callback = std::move(it->second);
          pending_.erase(it);
        }
      }
      if (!callback) {
        FERRY_LOG(DEBUG) << "reply to unknown or abandoned request " << h.request_id;
        return;
      }
      if (h.kind == FrameKind::kReply) {
        callback(Status::Ok(), frame.payload);
        return;
      }
      proto::StatusProto status;
      Status error;
      if (!status.ParseFromArray(frame.payload.data(), static_cast<int>(frame.payload.size()))) {
        error = Status::Internal("malformed error reply from " + peer_name());
      } else if (status.code() == 0) {
        error = Status::Internal("error reply without an error from " + peer_name());
      } else {
        error = Status(static_cast<StatusCode>(status.code()), status.message());
      }
      callback(std::move(error), {});
      return;
    }
    case FrameKind::kRequest:
    case FrameKind::kOneWay: {
      Responder responder;
      if (h.kind == FrameKind::kRequest) responder = Responder(self, h.method, h.request_id);
      if (io_->first_frame_hook) {
        FirstFrameHook hook = std::move(io_->first_frame_hook);
        io_->first_frame_hook = nullptr;
        hook(self, h, frame.payload, std::move(responder));
        return;
      }
      if (!dispatcher_) {
        if (responder.pending()) {
          responder.ReplyError(Status::Unimplemented("this end serves no requests"));
        }
        return;
      }
      dispatcher_->Dispatch(self, h.method, frame.payload, std::move(responder));
      return;
    }
  }
}

// ---------------------------------------------------------------- closing

void Channel::Close() {
  {
    MutexLock lock(mu_);
    if (closing_) return;
    closing_ = true;
  }
  PostToLoop([self = shared_from_this()] { self->CloseNow(Status::Ok()); });
}

void Channel::CloseAfterFlush(Status why) {
  IoState& io = *io_;
  if (io.closed) return;
  bool idle;
  {
    MutexLock lock(mu_);
    closing_ = true;  // nothing new goes out; what is queued still does
    idle = !write_in_flight_;
  }
  if (idle) {
    CloseNow(std::move(why));
  } else {
    io.close_after_flush = true;
    io.close_after_flush_reason = std::move(why);
  }
}

bool Channel::IsClosed() const {
  MutexLock lock(mu_);
  return closing_;
}

void Channel::SetCloseCallback(CloseCallback callback) {
  CloseCallback replaced;  // destroyed outside the lock
  Status reason;
  {
    MutexLock lock(mu_);
    if (!closed_) {
      replaced = std::move(close_callback_);
      close_callback_ = std::move(callback);
      return;
    }
    reason = close_reason_;
  }
  PostToLoop([cb = std::move(callback), reason] { cb(reason); });
}

void Channel::AddCloseCallback(CloseCallback callback) {
  Status reason;
  {
    MutexLock lock(mu_);
    if (!closed_) {
      extra_close_callbacks_.push_back(std::move(callback));
      return;
    }
    reason = close_reason_;
  }
  PostToLoop([cb = std::move(callback), reason] { cb(reason); });
}

void Channel::CloseNow(Status why) {
  IoState& io = *io_;
  if (io.closed) return;
  io.closed = true;
  std::unordered_map<uint64_t, ReplyCallback> pending;
  CloseCallback on_close;
  std::vector<CloseCallback> extra_on_close;
  std::deque<std::string> unsent;
  std::string message;
  {
    MutexLock lock(mu_);
    closing_ = true;
    closed_ = true;
    close_reason_ = why;
    pending.swap(pending_);
    on_close = std::move(close_callback_);
    close_callback_ = nullptr;
    extra_on_close.swap(extra_close_callbacks_);
    unsent.swap(write_queue_);
    write_in_flight_ = false;
    message = "channel to " + peer_name_ + " closed" +
              (why.ok() ? std::string(" locally") : ": " + why.ToString());
  }
  // No thread sends on fd_ any more (closing_ is set), so closing it cannot
  // race a direct send onto a reused descriptor.
  asio::error_code ec;
  io.socket.shutdown(asio::socket_base::shutdown_both, ec);
  io.socket.close(ec);
  io.unsent_at_close = std::move(unsent);
  for (auto& [id, callback] : pending) callback(Status::Unavailable(message), {});
  pending.clear();
  if (on_close) on_close(why);
  for (auto& callback : extra_on_close) callback(why);
}

// ---------------------------------------------------------------- Responder

Responder::Responder(std::shared_ptr<Channel> channel, uint16_t method, uint64_t request_id)
    : channel_(std::move(channel)), method_(method), request_id_(request_id) {}

Responder::Responder(Responder&& other) noexcept
    : channel_(std::move(other.channel_)), method_(other.method_), request_id_(other.request_id_) {}

Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (channel_) ReplyError(Status::Internal("responder overwritten without a reply"));
    channel_ = std::move(other.channel_);
    method_ = other.method_;
    request_id_ = other.request_id_;
  }
  return *this;
}

Responder::~Responder() {
  if (channel_) {
    ReplyError(Status::Internal("request for method " + std::to_string(method_) +
                                " was dropped without a reply"));
  }
}

void Responder::Reply(const google::protobuf::MessageLite& reply) {
  if (!channel_) return;
  std::shared_ptr<Channel> channel = std::move(channel_);
  channel->SendReply(method_, request_id_, &reply, Status::Ok());
}

void Responder::ReplyError(const Status& status) {
  if (!channel_) return;
  std::shared_ptr<Channel> channel = std::move(channel_);
  Status s = status.ok() ? Status::Internal("ReplyError called with OK") : status;
  channel->SendReply(method_, request_id_, nullptr, s);
}

}  // namespace ferry::rpc
