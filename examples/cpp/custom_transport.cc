// A tensor transport of your own in C++: AsioTcpTransport (TCP over asio,
// asio_tcp_transport.h) registered as "asio_tcp" and used like a built-in
// transport, including a transport that fails in the middle of a pull.
#include <atomic>
#include <cstring>
#include <stdexcept>

#include "asio_tcp_transport.h"
#include "check.h"

// A transport failing mid-transfer: its first pull in a process leaves the
// destination half written (the rest of the bytes never arrived) and throws.
class FailsOnceTransport : public example::AsioTcpTransport {
 public:
  ferry::Status Pull(std::span<const ferry::PullRequest> items,
                     std::chrono::steady_clock::time_point deadline) override {
    ferry::Status s = AsioTcpTransport::Pull(items, deadline);
    if (!s.ok() || failed_.exchange(true)) return s;
    const ferry::TransportBuffer& dst = items.front().dst;
    std::memset(static_cast<char*>(dst.data) + dst.nbytes / 2, 0, dst.nbytes - dst.nbytes / 2);
    throw std::runtime_error("the link dropped mid-transfer");
  }

 private:
  std::atomic<bool> failed_{false};
};

class MyActor {
 public:
  static MyActor* Create() { return new MyActor(); }
  ferry::Tensor RandomTensor() { return example::RandomTensor(1000, 1000, 7); }
  double Sum(const ferry::Tensor& tensor) { return example::Sum(tensor); }
  int64_t LiveExports() { return example::AsioTcpTransport::LiveExports(); }
};
FERRY_REMOTE(MyActor::Create, &MyActor::RandomTensor, &MyActor::Sum, &MyActor::LiveExports);

int main(int argc, char** argv) {
  // Before Init: actor workers are this binary re-executed, and Init never
  // returns in them.
  ferry::RegisterTensorTransport("asio_tcp", {"cpu"},
                                 [] { return std::make_unique<example::AsioTcpTransport>(); });
  ferry::RegisterTensorTransport("fails_once", {"cpu"},
                                 [] { return std::make_unique<FailsOnceTransport>(); });
  ferry::Init(argc, argv);  // an actor worker never returns from here
  auto sender = ferry::Actor(MyActor::Create).Remote();
  auto receiver = ferry::Actor(MyActor::Create).Remote();
  const double expected = example::Sum(example::RandomTensor(1000, 1000, 7));

  // The tensor stays in `sender`; `receiver` pulls it over asio_tcp.
  auto tensor = sender.Task(&MyActor::RandomTensor).SetTensorTransport("asio_tcp").Remote();
  double sum = *ferry::Get(receiver.Task(&MyActor::Sum).Remote(tensor));
  std::printf("%f\n", sum);
  example::Check(example::Close(sum, expected), "the receiver summed the sender's tensor");
  // The driver pulls it too.
  example::Check(example::Close(example::Sum(*ferry::Get(tensor)), expected),
                 "the driver pulled the sender's tensor");

  // A transport that throws mid-transfer fails the consumer's task with a
  // TransportError; the object stays valid and the next pull gets it.
  auto flaky = sender.Task(&MyActor::RandomTensor).SetTensorTransport("fails_once").Remote();
  bool transport_error = false;
  try {
    ferry::Get(receiver.Task(&MyActor::Sum).Remote(flaky));
  } catch (const ferry::TransportError& e) {
    transport_error = std::string(e.what()).find("the link dropped mid-transfer") !=
                      std::string::npos;
    std::printf("failed as expected: %s\n", e.what());
  }
  example::Check(transport_error, "a transport that throws fails the transfer with TransportError");
  sum = *ferry::Get(receiver.Task(&MyActor::Sum).Remote(flaky));
  example::Check(example::Close(sum, expected), "the object survives a failed pull");

  // Freeing: dropping the refs frees the sender's tensors and releases their
  // exports, without a call from the driver.
  example::Check(*ferry::Get(sender.Task(&MyActor::LiveExports).Remote()) == 2,
                 "the sender exports the two objects' tensors");
  tensor = {};
  flaky = {};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int64_t live = -1;
  while (live != 0 && std::chrono::steady_clock::now() < deadline) {
    live = *ferry::Get(sender.Task(&MyActor::LiveExports).Remote());
  }
  example::Check(live == 0, "freeing the objects released the sender's exports");
  ferry::Shutdown();
  return example::failures == 0 ? 0 : 1;
}
