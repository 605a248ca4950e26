// FakePeerMessenger: a PeerMessenger for unit tests that run several
// "processes" of a protocol in one process. Each address is served by a
// function the test registers (usually a component's Serve); a call runs it
// at once on the calling thread, so the order of events is the test's own.
// An address nobody serves, or one taken down with Disconnect, answers
// Unavailable, as a dead peer does.
//
// THREAD CONTRACT: thread-safe. Handlers run without the messenger's lock
// and may call back into it.
//
//   FakePeerMessenger peers;
//   peers.Serve("a", [&](uint16_t method, std::string_view payload, auto reply) {
//     holder_a.Serve(method, payload, std::move(reply));
//   });
//   peers.Call("a", proto::SEND_TENSORS, request, done);
#pragma once

#include <google/protobuf/message_lite.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>

#include "ferry/common/thread_annotations.h"
#include "ferry/core/peer_messenger.h"

namespace ferry::core {

class FakePeerMessenger : public PeerMessenger {
 public:
  using Reply = std::function<void(const Status&, const google::protobuf::MessageLite*)>;
  using Handler = std::function<void(uint16_t method, std::string_view payload, Reply reply)>;

  void Serve(const std::string& address, Handler handler) {
    MutexLock lock(mu_);
    handlers_[address] = std::move(handler);
  }
  void Disconnect(const std::string& address) {
    MutexLock lock(mu_);
    handlers_.erase(address);
  }
  // Requests sent so far with `method`, to any address.
  int CallsOf(uint16_t method) {
    MutexLock lock(mu_);
    return calls_[method];
  }

  void Call(const std::string& address, uint16_t method,
            std::shared_ptr<const google::protobuf::MessageLite> request, ReplyFn done) override {
    Deliver(address, method, *request,
            [done = std::move(done)](const Status& s, const google::protobuf::MessageLite* m) {
              done(s, s.ok() && m != nullptr ? m->SerializeAsString() : std::string());
            });
  }

  StatusOr<std::string> CallSync(const std::string& address, uint16_t method,
                                 const google::protobuf::MessageLite& request,
                                 Deadline deadline) override {
    struct Result {
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
      StatusOr<std::string> value = Status::Internal("no reply");
    };
    auto result = std::make_shared<Result>();
    Deliver(address, method, request,
            [result](const Status& s, const google::protobuf::MessageLite* m) {
              std::lock_guard<std::mutex> lock(result->mu);
              result->value = s.ok() ? StatusOr<std::string>(m != nullptr ? m->SerializeAsString()
                                                                          : std::string())
                                     : StatusOr<std::string>(s);
              result->done = true;
              result->cv.notify_all();
            });
    std::unique_lock<std::mutex> lock(result->mu);
    if (!result->cv.wait_until(lock, deadline.time_point(), [&] { return result->done; })) {
      return Status::DeadlineExceeded("no reply from " + address);
    }
    return result->value;
  }

  void Notify(const std::string& address, uint16_t method,
              const google::protobuf::MessageLite& message) override {
    Deliver(address, method, message, [](const Status&, const google::protobuf::MessageLite*) {});
  }

 private:
  void Deliver(const std::string& address, uint16_t method,
               const google::protobuf::MessageLite& request, Reply reply) {
    Handler handler;
    {
      MutexLock lock(mu_);
      calls_[method]++;
      auto it = handlers_.find(address);
      if (it != handlers_.end()) handler = it->second;
    }
    if (!handler) {
      reply(Status::Unavailable(address + " is unreachable"), nullptr);
      return;
    }
    handler(method, request.SerializeAsString(), std::move(reply));
  }

  Mutex mu_;
  std::map<std::string, Handler> handlers_ FERRY_GUARDED_BY(mu_);
  std::map<uint16_t, int> calls_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::core
