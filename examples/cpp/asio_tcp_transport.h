// A tensor transport of your own in C++: one-sided, over TCP with asio (the
// networking library ferry itself uses). A complete example of
// ferry::OneSidedTransport (ferry/transport.h); custom_transport.cc uses it.
//
// The producer serves the buffers it exported from a listening socket, on one
// thread running an io_context; a consumer's Pull connects to each producer
// it needs and reads its buffers by id, bounded by the pull's deadline.
// Endpoint: "host:port"; descriptor: "id:nbytes". Per buffer the consumer
// sends (id, nbytes) as two uint64 in host byte order and the producer answers one
// status byte (0: the bytes follow; 1: not exported or another size), then
// the bytes.
//
// THREAD CONTRACT: thread-safe, as ferry requires: Export, Release and Pull
// may run concurrently on ferry's threads. Release waits for the sends of
// its buffers still running (the memory is freed once it returns).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <asio.hpp>

#include "ferry/transport.h"

namespace example {

class AsioTcpTransport : public ferry::OneSidedTransport {
 public:
  AsioTcpTransport() = default;
  ~AsioTcpTransport() override {
    server_.stop();
    if (server_thread_.joinable()) server_thread_.join();
  }

  // Buffers exported and not yet released by every instance of this
  // process (the example checks that freeing an object releases them).
  static int64_t LiveExports() { return live_exports_; }

  ferry::StatusOr<ferry::ExportedBuffers> Export(
      const std::vector<ferry::TransportBuffer>& buffers) override {
    if (ferry::Status s = Listen(); !s.ok()) return s;
    ferry::ExportedBuffers out{endpoint_, {}};
    std::lock_guard lock(mu_);
    for (const ferry::TransportBuffer& b : buffers) {
      const uint64_t id = ++next_id_;
      exports_[id] = b;
      ids_[KeyOf(b)].push_back(id);
      ++live_exports_;
      out.descriptors.push_back(std::to_string(id) + ":" + std::to_string(b.nbytes));
    }
    return out;
  }

  void Release(const std::vector<ferry::TransportBuffer>& buffers) override {
    std::unique_lock lock(mu_);
    for (const ferry::TransportBuffer& b : buffers) {
      auto it = ids_.find(KeyOf(b));
      if (it == ids_.end()) continue;
      const uint64_t id = it->second.front();
      it->second.pop_front();
      if (it->second.empty()) ids_.erase(it);
      exports_.erase(id);
      --live_exports_;
      released_.wait(lock, [&] { return sending_[id] == 0; });
      sending_.erase(id);
    }
  }

  ferry::Status Pull(std::span<const ferry::PullRequest> items,
                     std::chrono::steady_clock::time_point deadline) override {
    // One connection per producer, its items read in order.
    std::map<std::string_view, std::vector<const ferry::PullRequest*>> by_producer;
    for (const ferry::PullRequest& item : items) by_producer[item.endpoint].push_back(&item);
    for (const auto& [endpoint, mine] : by_producer) {
      if (ferry::Status s = PullFrom(endpoint, mine, deadline); !s.ok()) return s;
    }
    return ferry::Status::Ok();
  }

 private:
  using Key = std::pair<void*, uint64_t>;
  static Key KeyOf(const ferry::TransportBuffer& b) { return {b.data, b.nbytes}; }

  // --- producer ---------------------------------------------------------

  ferry::Status Listen() {
    std::lock_guard lock(mu_);
    if (acceptor_) return ferry::Status::Ok();
    const char* ip = std::getenv("FERRY_NODE_IP");
    const std::string host = ip != nullptr && *ip != '\0' ? ip : "127.0.0.1";
    asio::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) return ferry::Status::InvalidArgument("bad FERRY_NODE_IP '" + host + "'");
    acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(server_);
    acceptor_->open(address.is_v6() ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), ec);
    if (!ec) acceptor_->bind({address, 0}, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      acceptor_.reset();
      return ferry::Status::Unavailable("cannot listen on " + host + ": " + ec.message());
    }
    endpoint_ = host + ":" + std::to_string(acceptor_->local_endpoint().port());
    Accept();
    server_thread_ = std::thread([this] { server_.run(); });
    return ferry::Status::Ok();
  }

  void Accept() {
    acceptor_->async_accept([this](asio::error_code ec, asio::ip::tcp::socket socket) {
      if (ec) return;  // stopped
      auto conn = std::make_shared<Connection>(std::move(socket));
      ReadRequest(conn);
      Accept();
    });
  }

  struct Connection {
    explicit Connection(asio::ip::tcp::socket s) : socket(std::move(s)) {}
    asio::ip::tcp::socket socket;
    std::array<uint64_t, 2> request{};  // id, nbytes
    uint8_t status = 0;
  };

  void ReadRequest(const std::shared_ptr<Connection>& conn) {
    asio::async_read(conn->socket, asio::buffer(conn->request),
                     [this, conn](asio::error_code ec, size_t) {
                       if (!ec) Answer(conn);  // else the consumer is done
                     });
  }

  void Answer(const std::shared_ptr<Connection>& conn) {
    const uint64_t id = conn->request[0];
    ferry::TransportBuffer data;
    bool found = false;
    {
      std::lock_guard lock(mu_);
      auto it = exports_.find(id);
      if (it != exports_.end() && it->second.nbytes == conn->request[1]) {
        data = it->second;
        found = true;
        ++sending_[id];
      }
    }
    conn->status = found ? 0 : 1;
    std::vector<asio::const_buffer> reply = {asio::buffer(&conn->status, 1)};
    if (conn->status == 0) reply.push_back(asio::buffer(data.data, data.nbytes));
    asio::async_write(conn->socket, reply,
                      [this, conn, id, sent = conn->status == 0](asio::error_code ec, size_t) {
                        if (sent) {
                          std::lock_guard lock(mu_);
                          --sending_[id];
                          released_.notify_all();
                        }
                        if (!ec) ReadRequest(conn);
                      });
  }

  // --- consumer ---------------------------------------------------------

  static ferry::Status PullFrom(std::string_view endpoint,
                                const std::vector<const ferry::PullRequest*>& items,
                                std::chrono::steady_clock::time_point deadline) {
    const size_t colon = endpoint.rfind(':');
    if (colon == std::string_view::npos) {
      return ferry::Status::InvalidArgument("bad endpoint '" + std::string(endpoint) + "'");
    }
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    asio::ip::tcp::resolver resolver(io);
    ferry::Status result = ferry::Status::Ok();
    bool done = false;
    asio::error_code ec;
    auto addresses = resolver.resolve(std::string(endpoint.substr(0, colon)),
                                      std::string(endpoint.substr(colon + 1)), ec);
    if (ec) return ferry::Status::Unavailable("cannot resolve " + std::string(endpoint));

    // Connect, then for each item: request, status byte, bytes. Every step
    // runs on `io`, which runs until done or the deadline.
    std::array<uint64_t, 2> request{};
    uint8_t status = 0;
    size_t next = 0;
    std::function<void()> step;
    auto fail = [&](std::string what) {
      result = ferry::Status::Aborted(std::move(what));
      done = true;
    };
    step = [&] {
      if (next == items.size()) {
        done = true;
        return;
      }
      const ferry::PullRequest* item = items[next];
      const size_t sep = item->descriptor.find(':');
      request = {std::strtoull(std::string(item->descriptor.substr(0, sep)).c_str(), nullptr, 10),
                 item->dst.nbytes};
      asio::async_write(socket, asio::buffer(request), [&, item](asio::error_code e, size_t) {
        if (e) return fail("sending a request to " + std::string(endpoint) + ": " + e.message());
        asio::async_read(socket, asio::buffer(&status, 1), [&, item](asio::error_code e2, size_t) {
          if (e2)
            return fail("the producer at " + std::string(endpoint) +
                        " closed the connection: " + e2.message());
          if (status != 0) {
            return fail("the producer at " + std::string(endpoint) +
                        " no longer exports this buffer");
          }
          asio::async_read(socket, asio::buffer(item->dst.data, item->dst.nbytes),
                           [&](asio::error_code e3, size_t) {
                             if (e3)
                               return fail("reading from " + std::string(endpoint) + ": " +
                                           e3.message());
                             ++next;
                             step();
                           });
        });
      });
    };
    asio::async_connect(socket, addresses, [&](asio::error_code e, const auto&) {
      if (e) return fail("cannot connect to " + std::string(endpoint) + ": " + e.message());
      step();
    });
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      io.run();
    } else {
      io.run_until(deadline);
    }
    if (!done) {
      return ferry::Status::DeadlineExceeded("pulling from " + std::string(endpoint) +
                                             " did not finish before the deadline");
    }
    return result;
  }

  static inline std::atomic<int64_t> live_exports_{0};
  std::mutex mu_;
  std::condition_variable released_;
  uint64_t next_id_ = 0;                                // guarded by mu_
  std::map<uint64_t, ferry::TransportBuffer> exports_;  // guarded by mu_
  std::map<Key, std::deque<uint64_t>> ids_;             // guarded by mu_
  std::map<uint64_t, int> sending_;                     // guarded by mu_
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;   // guarded by mu_; set once
  std::string endpoint_;                                // set once, by Listen

  asio::io_context server_;
  std::thread server_thread_;
};

}  // namespace example
