#include "ferry/rpc/server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "ferry/rpc/address.h"
#include "ferry/rpc/connect.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"
#include "ferry/rpc/test_util.h"

namespace ferry::rpc {
namespace {

using namespace testing;  // NOLINT: test helpers

std::string UniqueAbstract(const std::string& tag) {
  static std::atomic<int> n{0};
  return "unix:@ferry-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

// Opens a raw connected socket to `address` (no handshake).
int RawConnect(const std::string& address) {
  auto addr = ParseAddress(address);
  EXPECT_TRUE(addr.ok());
  int fd = ::socket(addr->family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(::connect(fd, addr->sockaddr_ptr(), addr->length()), 0) << std::strerror(errno);
  return fd;
}

// Reads until EOF (true) or the deadline (false), discarding bytes.
bool ReadUntilEof(int fd, Deadline deadline) {
  char buf[4096];
  while (!deadline.Expired()) {
    pollfd p{fd, POLLIN, 0};
    int ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline.Remaining()).count());
    if (::poll(&p, 1, ms) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n == 0) return true;
    if (n < 0 && errno != EINTR && errno != EAGAIN) return true;  // reset counts as closed
  }
  return false;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_.Start();
    held_ = std::make_shared<HeldResponders>();
    options_.token = "good-token";
    options_.worker_id = "server-worker-id";
    options_.pid = 4242;
  }
  void TearDown() override {
    if (server_) server_->Close();
    std::vector<std::shared_ptr<Channel>> accepted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      accepted = accepted_;
    }
    for (auto& c : accepted) c->Close();
    for (auto& c : clients_) c->Close();
    loop_.Stop();
    loop_.Join();
  }

  void Listen(const std::string& address) {
    auto server = Server::Listen(loop_, address, options_, MakeTestDispatcher(held_),
                                 [this](std::shared_ptr<Channel> ch) {
                                   EXPECT_TRUE(loop_.InLoopThread());
                                   {
                                     std::lock_guard<std::mutex> lock(mu_);
                                     accepted_.push_back(std::move(ch));
                                   }
                                   waiter_.Notify();
                                 });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  proto::Hello ClientHello(std::string token = "good-token") {
    proto::Hello hello;
    hello.set_token(std::move(token));
    hello.set_worker_id("client-worker-id");
    hello.set_address("unix:@client-listens-here");
    hello.set_pid(777);
    return hello;
  }

  StatusOr<std::shared_ptr<Channel>> ConnectClient(const std::string& token = "good-token",
                                                   std::shared_ptr<Dispatcher> d = nullptr) {
    auto ch = Connect(loop_, server_->address(), ClientHello(token), std::move(d),
                      Deadline::After(kWait));
    if (ch.ok()) clients_.push_back(*ch);
    return ch;
  }

  size_t Accepted() {
    std::lock_guard<std::mutex> lock(mu_);
    return accepted_.size();
  }

  IoLoop loop_{"server-test"};
  Waiter waiter_;
  std::shared_ptr<HeldResponders> held_;
  ServerOptions options_;
  std::unique_ptr<Server> server_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Channel>> accepted_;
  std::vector<std::shared_ptr<Channel>> clients_;
};

TEST_F(ServerTest, AbstractSocketHandshakeAndEcho) {
  Listen(UniqueAbstract("echo"));
  EXPECT_EQ(server_->address().rfind("unix:@ferry-test-echo", 0), 0u);
  auto ch = ConnectClient();
  ASSERT_TRUE(ch.ok()) << ch.status();
  EXPECT_EQ((*ch)->peer().worker_id(), "server-worker-id");
  EXPECT_EQ((*ch)->peer().pid(), 4242);
  EXPECT_EQ((*ch)->peer().address(), server_->address());
  auto reply = (*ch)->CallSync(kEcho, Msg("over the wire"), Deadline::After(kWait));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(Text(*reply), "over the wire");

  ASSERT_TRUE(waiter_.WaitFor([&] { return Accepted() == 1; }));
  std::shared_ptr<Channel> accepted = accepted_[0];
  EXPECT_EQ(accepted->peer().worker_id(), "client-worker-id");
  EXPECT_EQ(accepted->peer().pid(), 777);
  EXPECT_EQ(accepted->peer().address(), "unix:@client-listens-here");
  EXPECT_TRUE(accepted->peer().token().empty()) << "the token must not be kept";
}

TEST_F(ServerTest, ServerCallsTheClientBack) {
  Listen(UniqueAbstract("symmetric"));
  auto ch = ConnectClient("good-token", MakeTestDispatcher(held_));
  ASSERT_TRUE(ch.ok()) << ch.status();
  ASSERT_TRUE(waiter_.WaitFor([&] { return Accepted() == 1; }));
  auto reply = accepted_[0]->CallSync(kEcho, Msg("from server"), Deadline::After(kWait));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(Text(*reply), "from server");
}

TEST_F(ServerTest, WrongTokenIsRejectedAndServerKeepsServing) {
  Listen(UniqueAbstract("token"));
  auto good1 = ConnectClient();
  ASSERT_TRUE(good1.ok());
  auto bad = ConnectClient("wrong-token");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kPermissionDenied) << bad.status();
  auto missing = ConnectClient("");
  EXPECT_EQ(missing.status().code(), StatusCode::kPermissionDenied) << missing.status();
  // Existing channel undisturbed, new good clients accepted.
  EXPECT_TRUE((*good1)->CallSync(kEcho, Msg("a"), Deadline::After(kWait)).ok());
  auto good2 = ConnectClient();
  ASSERT_TRUE(good2.ok()) << good2.status();
  EXPECT_TRUE((*good2)->CallSync(kEcho, Msg("b"), Deadline::After(kWait)).ok());
  ASSERT_TRUE(waiter_.WaitFor([&] { return Accepted() == 2; }));
}

TEST_F(ServerTest, NonHelloFirstFrameClosesTheConnection) {
  Listen(UniqueAbstract("nohello"));
  int fd = RawConnect(server_->address());
  auto frame = EncodeFrame(kEcho, FrameKind::kRequest, 1, Msg("sneaky"));
  ASSERT_TRUE(frame.ok());
  ASSERT_EQ(::write(fd, frame->data(), frame->size()), static_cast<ssize_t>(frame->size()));
  EXPECT_TRUE(ReadUntilEof(fd, Deadline::After(kWait)));
  ::close(fd);
  // A one-way first frame too.
  fd = RawConnect(server_->address());
  frame = EncodeFrame(proto::HELLO, FrameKind::kOneWay, 0, ClientHello());
  ASSERT_EQ(::write(fd, frame->data(), frame->size()), static_cast<ssize_t>(frame->size()));
  EXPECT_TRUE(ReadUntilEof(fd, Deadline::After(kWait)));
  ::close(fd);
  auto good = ConnectClient();
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(Accepted(), 1u);
}

TEST_F(ServerTest, SilentClientIsDroppedAfterHandshakeTimeout) {
  options_.handshake_timeout = std::chrono::milliseconds(100);
  Listen(UniqueAbstract("silent"));
  int fd = RawConnect(server_->address());
  EXPECT_TRUE(ReadUntilEof(fd, Deadline::After(kWait)));
  ::close(fd);
  EXPECT_TRUE(ConnectClient().ok());
}

TEST_F(ServerTest, TcpLoopbackWithPickedPort) {
  Listen("tcp:127.0.0.1:0");
  auto addr = ParseAddress(server_->address());
  ASSERT_TRUE(addr.ok()) << server_->address();
  EXPECT_TRUE(addr->IsTcp());
  EXPECT_NE(server_->address(), "tcp:127.0.0.1:0");
  auto ch = ConnectClient();
  ASSERT_TRUE(ch.ok()) << ch.status();
  auto reply = (*ch)->CallSync(kEcho, Msg("tcp"), Deadline::After(kWait));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(Text(*reply), "tcp");
  std::string big(1 << 20, 'q');
  reply = (*ch)->CallSync(kEcho, Msg(big), Deadline::After(kWait));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(Text(*reply), big);
}

TEST_F(ServerTest, AddressListSkipsAnUnreachableUnixEntry) {
  Listen("tcp:127.0.0.1:0");
  // Another host's abstract socket does not exist here: the TCP entry is used.
  const std::string list = UniqueAbstract("elsewhere") + "," + server_->address();
  auto ch = Connect(loop_, list, ClientHello(), nullptr, Deadline::After(kWait));
  ASSERT_TRUE(ch.ok()) << ch.status();
  clients_.push_back(*ch);
  EXPECT_EQ((*ch)->peer().address(), list);
  auto reply = (*ch)->CallSync(kEcho, Msg("via tcp"), Deadline::After(kWait));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(Text(*reply), "via tcp");
}

TEST_F(ServerTest, AddressListStopsAtARejectedToken) {
  Listen("tcp:127.0.0.1:0");
  auto ch = Connect(loop_, server_->address() + "," + UniqueAbstract("never-tried"),
                    ClientHello("bad-token"), nullptr, Deadline::After(kWait));
  ASSERT_FALSE(ch.ok());
  EXPECT_NE(ch.status().code(), StatusCode::kOk);
  EXPECT_EQ(ch.status().message().find("never-tried"), std::string::npos) << ch.status();
}

TEST_F(ServerTest, DefaultTcpAddressIsLoopback) {
  Listen("tcp:0");
  EXPECT_EQ(server_->address().rfind("tcp:127.0.0.1:", 0), 0u) << server_->address();
}

TEST_F(ServerTest, UnixPathSocketIsRemovedOnClose) {
  char dir_template[] = "/tmp/ferry-rpc-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  std::string path = std::string(dir_template) + "/server.sock";
  Listen("unix:" + path);
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  auto ch = ConnectClient();
  ASSERT_TRUE(ch.ok()) << ch.status();
  server_->Close();
  EXPECT_NE(::stat(path.c_str(), &st), 0);
  // After Close nothing accepts; the live channel still works.
  auto refused = Connect(loop_, "unix:" + path, ClientHello(), nullptr, Deadline::After(kWait));
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE((*ch)->CallSync(kEcho, Msg("alive"), Deadline::After(kWait)).ok());
  ::rmdir(dir_template);
}

TEST_F(ServerTest, StaleUnixSocketFileIsReplaced) {
  char dir_template[] = "/tmp/ferry-rpc-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  std::string path = std::string(dir_template) + "/stale.sock";
  {
    auto addr = ParseAddress("unix:" + path);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_EQ(::bind(fd, addr->sockaddr_ptr(), addr->length()), 0);
    ::close(fd);  // leaves the file, nobody listening
  }
  Listen("unix:" + path);
  EXPECT_TRUE(ConnectClient().ok());
  server_->Close();
  ::rmdir(dir_template);
}

TEST_F(ServerTest, AddressInUse) {
  std::string address = UniqueAbstract("inuse");
  Listen(address);
  auto second = Server::Listen(loop_, address, options_, nullptr, nullptr);
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists) << second.status();
}

TEST_F(ServerTest, NothingListeningIsUnavailable) {
  auto ch = Connect(loop_, UniqueAbstract("nobody"), ClientHello(), nullptr,
                    Deadline::After(kWait));
  EXPECT_EQ(ch.status().code(), StatusCode::kUnavailable) << ch.status();
  auto bad = Connect(loop_, "bogus:addr", ClientHello(), nullptr, Deadline::After(kWait));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ServerTest, HandshakeWithoutReplyHitsTheDeadline) {
  // A socket that listens but never speaks: connect succeeds, Hello waits.
  std::string address = UniqueAbstract("mute");
  auto addr = ParseAddress(address);
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::bind(listener, addr->sockaddr_ptr(), addr->length()), 0);
  ASSERT_EQ(::listen(listener, 8), 0);
  auto start = Clock::now();
  auto ch = Connect(loop_, address, ClientHello(), nullptr,
                    Deadline::After(std::chrono::milliseconds(100)));
  EXPECT_EQ(ch.status().code(), StatusCode::kDeadlineExceeded) << ch.status();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  ::close(listener);
}

TEST_F(ServerTest, ConnectAsyncReportsOnTheIoThread) {
  Listen(UniqueAbstract("async"));
  std::atomic<bool> done{false};
  std::atomic<bool> on_io{false};
  std::shared_ptr<Channel> got;
  ConnectAsync(loop_, server_->address(), ClientHello(), nullptr, Deadline::After(kWait),
               [&](StatusOr<std::shared_ptr<Channel>> ch) {
                 on_io = loop_.InLoopThread();
                 EXPECT_TRUE(ch.ok()) << ch.status();
                 if (ch.ok()) got = *ch;
                 done = true;
                 waiter_.Notify();
               });
  ASSERT_TRUE(waiter_.WaitFor([&] { return done.load(); }));
  EXPECT_TRUE(on_io);
  ASSERT_NE(got, nullptr);
  clients_.push_back(got);
}

TEST_F(ServerTest, ClientCloseIsSeenByTheServer) {
  Listen(UniqueAbstract("close"));
  auto ch = ConnectClient();
  ASSERT_TRUE(ch.ok());
  ASSERT_TRUE(waiter_.WaitFor([&] { return Accepted() == 1; }));
  std::atomic<int> closed{0};
  Status why;
  accepted_[0]->SetCloseCallback([&](Status s) {
    why = s;
    ++closed;
    waiter_.Notify();
  });
  (*ch)->Close();
  ASSERT_TRUE(waiter_.WaitFor([&] { return closed.load() == 1; }));
  EXPECT_EQ(why.code(), StatusCode::kUnavailable);
  EXPECT_NE(why.message().find("client-listens-here"), std::string::npos) << why;
}

TEST(ConstantTimeEqualsTest, Compares) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
}

}  // namespace
}  // namespace ferry::rpc
