// ferry/transport.h: a user's transports, registered through the public API,
// as the core sees them (transport/registry.h): calls forwarded, exceptions
// turned into Statuses, the group's store reachable while joining, and an
// abort when a group's transport is destroyed. One process; the end-to-end
// runs are examples/cpp/custom_transport.cc and the Python tests.
#include "ferry/transport.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "ferry/errors.h"
#include "ferry/transport/in_memory_rendezvous_store.h"
#include "ferry/transport/registry.h"
#include "ferry/transport/transport_table.h"

namespace {

using ferry::Status;
using ferry::StatusCode;

// One-sided, in one process: the endpoint is unused, the descriptor is the
// buffer's address.
class InProcessTransport : public ferry::OneSidedTransport {
 public:
  ferry::StatusOr<ferry::ExportedBuffers> Export(
      const std::vector<ferry::TransportBuffer>& buffers) override {
    ferry::ExportedBuffers out{"here", {}};
    for (const auto& b : buffers) out.descriptors.push_back(std::to_string(uintptr_t(b.data)));
    return out;
  }
  void Release(const std::vector<ferry::TransportBuffer>&) override {
    throw std::runtime_error("release is best effort");
  }
  Status Pull(std::span<const ferry::PullRequest> items,
              std::chrono::steady_clock::time_point) override {
    for (const auto& i : items) {
      if (i.dst.nbytes == 13) throw std::runtime_error("unlucky size");
      const auto* src = reinterpret_cast<const char*>(std::stoull(std::string(i.descriptor)));
      std::memcpy(i.dst.data, src, i.dst.nbytes);
    }
    return Status::Ok();
  }
};

TEST(UserTransportTest, AOneSidedTransportIsCalledThroughTheCoresInterface) {
  ferry::RegisterTensorTransport("api_in_process", {"cpu"},
                                 [] { return std::make_unique<InProcessTransport>(); });
  auto t = ferry::transport::CreateOneSidedTransport("api_in_process");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->name(), "api_in_process");
  char src[13] = "hello, ferry";
  char dst[12] = {};
  auto exported = (*t)->Export({{src, 12}});
  ASSERT_TRUE(exported.ok()) << exported.status();
  ferry::transport::PullItem item{exported->endpoint, exported->descriptors[0], {dst, 12}};
  ASSERT_TRUE((*t)->Pull({&item, 1}, ferry::Deadline::Never()).ok());
  EXPECT_EQ(std::string(dst, 12), "hello, ferry");
  (*t)->Release({{src, 12}});  // its exception stays inside

  char big[13];
  item.dst = {big, 13};
  Status thrown = (*t)->Pull({&item, 1}, ferry::Deadline::Never());
  EXPECT_EQ(thrown.code(), StatusCode::kAborted);
  EXPECT_EQ(thrown.message(), "tensor transport 'api_in_process': Pull threw: unlucky size");
}

TEST(UserTransportTest, AFactoryThatThrowsOrMakesNothingIsAnError) {
  ferry::RegisterTensorTransport("api_throws", {"cpu"},
                                 []() -> std::unique_ptr<ferry::OneSidedTransport> {
                                   throw std::runtime_error("no device");
                                 });
  ferry::RegisterTensorTransport("api_null", {"cpu"}, [] { return nullptr; });
  auto threw = ferry::transport::CreateOneSidedTransport("api_throws");
  EXPECT_EQ(threw.status().code(), StatusCode::kAborted);
  EXPECT_NE(threw.status().message().find("no device"), std::string::npos);
  EXPECT_EQ(ferry::transport::CreateOneSidedTransport("api_null").status().code(),
            StatusCode::kInternal);
}

TEST(UserTransportTest, BadRegistrationsThrowInvalidArgumentError) {
  auto make = [] { return std::make_unique<InProcessTransport>(); };
  EXPECT_THROW(ferry::RegisterTensorTransport("Bad Name", {"cpu"}, make),
               ferry::InvalidArgumentError);
  EXPECT_THROW(ferry::RegisterTensorTransport("gloo", {"cpu"}, make), ferry::InvalidArgumentError);
  EXPECT_THROW(ferry::RegisterTensorTransport("api_no_devices", {}, make),
               ferry::InvalidArgumentError);
  EXPECT_THROW(ferry::RegisterTensorTransport("api_no_factory", {"cpu"}, nullptr),
               ferry::InvalidArgumentError);
}

// Two-sided, in one process: a mailbox per (src, dst, tag) shared by the
// ranks; every `done` fires from a thread of the transport's own.
struct Mailbox {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::tuple<int, int, uint64_t>, std::string> letters;
};

class MailboxTransport : public ferry::TwoSidedTransport {
 public:
  MailboxTransport(Mailbox* box, int rank) : box_(box), rank_(rank) {}
  ~MailboxTransport() override {
    for (auto& t : threads_) t.join();
  }
  static inline std::atomic<int> aborts{0};

  void Send(int peer, uint64_t tag, std::vector<ferry::TransportBuffer> buffers,
            ferry::TransferDone done) override {
    if (tag == 666) throw std::runtime_error("tag of the beast");
    std::string bytes;
    for (const auto& b : buffers) bytes.append(static_cast<const char*>(b.data), b.nbytes);
    {
      std::lock_guard lock(box_->mu);
      box_->letters[{rank_, peer, tag}] = std::move(bytes);
    }
    box_->cv.notify_all();
    threads_.emplace_back([done] { done(Status::Ok()); });
  }
  void Recv(int peer, uint64_t tag, std::vector<ferry::TransportBuffer> buffers,
            ferry::TransferDone done) override {
    threads_.emplace_back([this, peer, tag, buffers, done] {
      std::unique_lock lock(box_->mu);
      box_->cv.wait(lock, [&] { return box_->letters.count({peer, rank_, tag}) > 0; });
      const std::string bytes = box_->letters[{peer, rank_, tag}];
      lock.unlock();
      size_t at = 0;
      for (const auto& b : buffers) {
        std::memcpy(b.data, bytes.data() + at, b.nbytes);
        at += b.nbytes;
      }
      done(Status::Ok());
    });
  }
  void Abort(Status) override { ++aborts; }

 private:
  Mailbox* box_;
  int rank_;
  std::vector<std::thread> threads_;
};

TEST(UserTransportTest, ATwoSidedTransportJoinsThroughTheGroupsStoreAndMovesBytes) {
  static Mailbox box;
  static std::string heard[2];  // what each rank looked up: its peer's greeting
  ferry::RegisterTwoSidedTensorTransport("api_mailbox", {"cpu"}, [](const ferry::GroupMember& m) {
    Status s = m.publish("rank" + std::to_string(m.rank), "hi from " + std::to_string(m.rank));
    if (!s.ok()) throw std::runtime_error(s.ToString());
    auto peer = m.lookup("rank" + std::to_string(1 - m.rank), m.join_deadline);
    if (!peer.ok()) throw std::runtime_error(peer.status().ToString());
    heard[m.rank] = *peer;
    return std::make_unique<MailboxTransport>(&box, m.rank);
  });
  // The registration made a collective backend of the same name.
  EXPECT_TRUE(ferry::transport::CheckCollectiveBackend("api_mailbox").ok());

  ferry::transport::InMemoryRendezvousStore store;
  auto join = [&](int rank) {
    ferry::transport::TransportOptions o;
    o.prefix = "group-1";
    o.rank = rank;
    o.size = 2;
    o.connect_timeout = std::chrono::milliseconds(200);
    return ferry::transport::CreateTwoSidedTransport("api_mailbox", store, o);
  };
  auto rank0 = std::async(std::launch::async, join, 0);
  auto rank1 = join(1);
  auto r0 = rank0.get();
  ASSERT_TRUE(r0.ok()) << r0.status();
  ASSERT_TRUE(rank1.ok()) << rank1.status();
  EXPECT_EQ(heard[0], "hi from 1");
  EXPECT_EQ(heard[1], "hi from 0");
  EXPECT_EQ((*rank1)->rank(), 1);
  EXPECT_EQ((*rank1)->size(), 2);

  char out[6] = "ferry";
  char in[6] = {};
  std::promise<Status> sent, received;
  (*r0)->Send(1, 7, {{out, 6}}, [&](Status s) { sent.set_value(s); });
  (*rank1)->Recv(0, 7, {{in, 6}}, [&](Status s) { received.set_value(s); });
  EXPECT_TRUE(sent.get_future().get().ok());
  EXPECT_TRUE(received.get_future().get().ok());
  EXPECT_STREQ(in, "ferry");

  // A Send that throws fails its transfer through `done`.
  std::promise<Status> thrown;
  (*r0)->Send(1, 666, {{out, 6}}, [&](Status s) { thrown.set_value(s); });
  Status s = thrown.get_future().get();
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_NE(s.message().find("Send threw: tag of the beast"), std::string::npos) << s;

  // Destroying a member aborts the user's transport first.
  const int before = MailboxTransport::aborts;
  r0->reset();
  EXPECT_EQ(MailboxTransport::aborts, before + 1);
}

}  // namespace
