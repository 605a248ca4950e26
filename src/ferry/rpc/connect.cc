#include "ferry/rpc/connect.h"

#include <fcntl.h>
#include <netinet/in.h>

#include <condition_variable>
#include <mutex>

#include <asio/generic/stream_protocol.hpp>
#include <asio/steady_timer.hpp>

#include "ferry/common/logging.h"
#include "ferry/rpc/address.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"

namespace ferry::rpc {

// One connect + handshake. Lives on the io thread; finishes exactly once.
class ConnectOperation : public std::enable_shared_from_this<ConnectOperation> {
 public:
  // `address` is the one to try; `peer_address` names the peer (the whole
  // address list it was reached by: the key callers know it under).
  ConnectOperation(IoLoop& loop, std::string address, std::string peer_address, proto::Hello hello,
                   std::shared_ptr<Dispatcher> dispatcher, Deadline deadline, ConnectCallback done,
                   ChannelOptions options)
      : loop_(loop),
        address_(std::move(address)),
        peer_address_(std::move(peer_address)),
        hello_(std::move(hello)),
        dispatcher_(std::move(dispatcher)),
        deadline_(deadline),
        done_(std::move(done)),
        options_(options),
        socket_(loop.context()),
        timer_(loop.context()) {}

  void Begin() {
    StatusOr<SocketAddress> addr = ParseAddress(address_);
    if (!addr.ok()) return Finish(addr.status());
    if (!deadline_.IsNever()) {
      timer_.expires_at(deadline_.time_point());
      timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
        if (!ec)
          self->Finish(Status::DeadlineExceeded("connecting to " + self->address_ +
                                                " did not finish before the deadline"));
      });
    }
    asio::error_code ec;
    asio::generic::stream_protocol protocol(addr->family(), addr->IsTcp() ? IPPROTO_TCP : 0);
    socket_.open(protocol, ec);
    if (ec) return Finish(Status::Internal("socket: " + ec.message()));
    ::fcntl(socket_.native_handle(), F_SETFD, FD_CLOEXEC);  // never leak into spawned workers
    asio::generic::stream_protocol::endpoint endpoint(addr->sockaddr_ptr(), addr->length(),
                                                      protocol.protocol());
    socket_.async_connect(endpoint, [self = shared_from_this()](const std::error_code& ec) {
      self->OnConnected(ec);
    });
  }

 private:
  void OnConnected(const std::error_code& ec) {
    if (finished_) return;
    if (ec) {
      return Finish(Status::Unavailable("cannot connect to " + address_ + ": " + ec.message()));
    }
    asio::error_code release_ec;
    int fd = socket_.release(release_ec);
    if (release_ec) return Finish(Status::Internal("socket release: " + release_ec.message()));
    StatusOr<std::shared_ptr<Channel>> channel = Channel::Create(loop_, fd, dispatcher_, address_,
                                                                 options_);
    if (!channel.ok()) return Finish(channel.status());
    channel_ = std::move(*channel);
    channel_->Start();
    channel_->Call(proto::HELLO, hello_,
                   [self = shared_from_this()](Status status, std::string_view payload) {
                     self->OnHelloReply(std::move(status), payload);
                   });
  }

  void OnHelloReply(Status status, std::string_view payload) {
    if (finished_) return;
    if (!status.ok()) {
      return Finish(status.WithContext("handshake with " + address_));
    }
    proto::HelloReply reply;
    if (!reply.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      return Finish(Status::Unavailable("malformed HelloReply from " + address_));
    }
    proto::Hello peer;
    peer.set_worker_id(reply.worker_id());
    peer.set_pid(reply.pid());
    peer.set_address(peer_address_);
    channel_->SetPeer(std::move(peer), address_ + " (pid " + std::to_string(reply.pid()) + ")");
    Finish(channel_);
  }

  void Finish(StatusOr<std::shared_ptr<Channel>> result) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    if (!result.ok()) {
      asio::error_code ec;
      socket_.close(ec);
      if (channel_) channel_->Close();
    }
    channel_.reset();
    ConnectCallback done = std::move(done_);
    done(std::move(result));
  }

  IoLoop& loop_;
  const std::string address_;
  const std::string peer_address_;
  const proto::Hello hello_;
  const std::shared_ptr<Dispatcher> dispatcher_;
  const Deadline deadline_;
  ConnectCallback done_;
  const ChannelOptions options_;
  asio::generic::stream_protocol::socket socket_;
  asio::steady_timer timer_;
  std::shared_ptr<Channel> channel_;
  bool finished_ = false;
};

namespace {

// Tries `addresses` in order, moving on only when one is unreachable (nothing
// listens there, as for another host's abstract Unix socket); any other error
// — a rejected token, the deadline — is the answer. Runs on the io thread.
void ConnectFirstReachable(IoLoop& loop, std::shared_ptr<std::vector<std::string>> addresses,
                           size_t index, std::string full_address, const proto::Hello& hello,
                           std::shared_ptr<Dispatcher> dispatcher, Deadline deadline,
                           ConnectCallback done, ChannelOptions options) {
  const bool last = index + 1 >= addresses->size();
  ConnectCallback next = std::move(done);
  if (!last) {
    next = [&loop, addresses, index, full_address, hello, dispatcher, deadline,
            done = std::move(next), options](StatusOr<std::shared_ptr<Channel>> channel) mutable {
      if (channel.ok() || channel.status().code() != StatusCode::kUnavailable) {
        return done(std::move(channel));
      }
      ConnectFirstReachable(loop, addresses, index + 1, std::move(full_address), hello,
                            std::move(dispatcher), deadline, std::move(done), options);
    };
  }
  auto op = std::make_shared<ConnectOperation>(loop, (*addresses)[index], full_address, hello,
                                               std::move(dispatcher), deadline, std::move(next),
                                               options);
  op->Begin();
}

}  // namespace

void ConnectAsync(IoLoop& loop, const std::string& address, const proto::Hello& hello,
                  std::shared_ptr<Dispatcher> dispatcher, Deadline deadline, ConnectCallback done,
                  ChannelOptions options) {
  if (dispatcher) dispatcher->Freeze();
  auto addresses = std::make_shared<std::vector<std::string>>(SplitAddressList(address));
  if (addresses->empty()) addresses->push_back(address);  // ParseAddress reports it
  loop.Post([&loop, addresses, address, hello, dispatcher = std::move(dispatcher), deadline,
             done = std::move(done), options]() mutable {
    ConnectFirstReachable(loop, addresses, 0, address, hello, std::move(dispatcher), deadline,
                          std::move(done), options);
  });
}

StatusOr<std::shared_ptr<Channel>> Connect(IoLoop& loop, const std::string& address,
                                           const proto::Hello& hello,
                                           std::shared_ptr<Dispatcher> dispatcher,
                                           Deadline deadline, ChannelOptions options) {
  FERRY_CHECK(!loop.InLoopThread())
      << "Connect() on the io thread would deadlock; use ConnectAsync";
  struct Result {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    bool abandoned = false;
    StatusOr<std::shared_ptr<Channel>> value = Status::Internal("unset");
  };
  auto result = std::make_shared<Result>();
  ConnectAsync(
      loop, address, hello, std::move(dispatcher), deadline,
      [result](StatusOr<std::shared_ptr<Channel>> channel) {
        std::unique_lock<std::mutex> lock(result->mu);
        if (result->abandoned) {
          lock.unlock();
          if (channel.ok()) (*channel)->Close();  // nobody will use it
          return;
        }
        result->value = std::move(channel);
        result->done = true;
        result->cv.notify_all();
      },
      options);
  std::unique_lock<std::mutex> lock(result->mu);
  auto ready = [&] { return result->done; };
  if (deadline.IsNever()) {
    result->cv.wait(lock, ready);
  } else if (!result->cv.wait_until(lock, deadline.time_point(), ready)) {
    result->abandoned = true;
    return Status::DeadlineExceeded("connecting to " + address +
                                    " did not finish before the deadline");
  }
  return std::move(result->value);
}

}  // namespace ferry::rpc
