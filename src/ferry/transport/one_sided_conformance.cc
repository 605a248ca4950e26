#include "ferry/transport/one_sided_conformance.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <sstream>

#include "ferry/common/logging.h"
#include "ferry/config.h"
#include "ferry/testing/child_process.h"
#include "ferry/testing/deadline.h"
#include "ferry/transport/registry.h"
#if FERRY_HAVE_SHM
#include "ferry/transport/shm/shm_transport.h"
#endif
#if FERRY_HAVE_UCX
#include "ferry/transport/ucx/ucx_transport.h"
#endif

namespace ferry::transport::conformance {
namespace {

using ferry::testing::ChildProcess;
using std::chrono::seconds;

// The producer child reads its variant and buffers from here:
// "<variant label>|<size>:<seed>,<size>:<seed>,...".
constexpr char kProducerEnv[] = "FERRY_ONE_SIDED_CONFORMANCE_PRODUCER";
constexpr char kProducerTest[] = "OneSidedConformanceChild.DISABLED_Producer";

const Variant* FindVariant(const std::string& label) {
  static const std::vector<Variant> variants = Variants();
  for (const Variant& v : variants) {
    if (v.label == label) return &v;
  }
  return nullptr;
}

std::string EncodeSpecs(const std::vector<BufferSpec>& specs) {
  std::ostringstream out;
  for (const BufferSpec& s : specs) out << s.size << ":" << s.seed << ",";
  return out.str();
}

std::vector<BufferSpec> DecodeSpecs(const std::string& text) {
  std::vector<BufferSpec> specs;
  std::istringstream in(text);
  std::string entry;
  while (std::getline(in, entry, ',')) {
    const size_t colon = entry.find(':');
    specs.push_back({std::stoull(entry.substr(0, colon)), std::stoull(entry.substr(colon + 1))});
  }
  return specs;
}

// A producer in another process (OneSidedConformanceChild.DISABLED_Producer).
class ProcessProducer : public Producer {
 public:
  explicit ProcessProducer(std::unique_ptr<ChildProcess> child) : child_(std::move(child)) {}
  Status ReadExports(size_t count) {
    FERRY_ASSIGN_OR_RETURN(std::vector<std::string> message,
                           child_->channel().Receive(Deadline::After(kPullWait)));
    if (message.size() != count + 1) {
      return Status::Internal("the producer sent " + std::to_string(message.size()) + " parts");
    }
    exported_.endpoint = message[0];
    exported_.descriptors.assign(message.begin() + 1, message.end());
    return Status::Ok();
  }

  // Tells a live producer to exit, and checks that it did cleanly.
  ~ProcessProducer() override {
    if (gone_) return;
    child_->channel().Send({"q"});
    auto code = child_->Join(ferry::testing::Soon());
    EXPECT_TRUE(code.ok() && *code == 0)
        << "producer: " << (code.ok() ? "exit " + std::to_string(*code) : code.status().ToString());
  }

  void Kill() override {
    gone_ = true;
    child_->Kill();
  }
  void KillNoReap() override {
    gone_ = true;
    child_->KillNoReap();
  }
  void Stop() override { kill(child_->pid(), SIGSTOP); }
  void Continue() override { kill(child_->pid(), SIGCONT); }

 private:
  std::unique_ptr<ChildProcess> child_;
  std::atomic<bool> gone_{false};
};

class InProcessProducer : public Producer {
 public:
  InProcessProducer(std::unique_ptr<OneSidedTransport> transport, Memory memory,
                    const std::vector<BufferSpec>& specs, FakeOneSidedFabric* fabric)
      : fabric_(fabric), transport_(std::move(transport)), buffers_(memory, specs) {}
  Status Export() {
    FERRY_ASSIGN_OR_RETURN(exported_, transport_->Export(buffers_.views()));
    exported_all_ = true;
    return Status::Ok();
  }
  ~InProcessProducer() override {
    if (exported_all_) transport_->Release(buffers_.views());
  }

  void Kill() override {
    FERRY_CHECK(fabric_ != nullptr) << "an in-process producer of a real backend cannot die";
    fabric_->Kill(exported_.endpoint);
  }
  void KillNoReap() override { Kill(); }
  // Pulls from this process never wait for the producer's threads.
  void Stop() override {}
  void Continue() override {}

 private:
  FakeOneSidedFabric* const fabric_;
  std::unique_ptr<OneSidedTransport> transport_;
  PatternedBuffers buffers_;
  bool exported_all_ = false;
};

// The child's side; runs only when started by StartProcessProducer.
TEST(OneSidedConformanceChild, DISABLED_Producer) {
  const char* env = std::getenv(kProducerEnv);
  if (env == nullptr)
    GTEST_SKIP() << "runs only as a producer process started by the conformance tests";
  const std::string spec(env);
  const Variant* variant = FindVariant(spec.substr(0, spec.find('|')));
  ASSERT_NE(variant, nullptr) << spec;
  auto transport = CreateOneSidedTransport(variant->name);
  ASSERT_TRUE(transport.ok()) << transport.status();
  PatternedBuffers buffers(variant->memory, DecodeSpecs(spec.substr(spec.find('|') + 1)));
  auto exported = (*transport)->Export(buffers.views());
  ASSERT_TRUE(exported.ok()) << exported.status();
  std::vector<std::string> message = {exported->endpoint};
  message.insert(message.end(), exported->descriptors.begin(), exported->descriptors.end());
  auto parent = ChildProcess::ChannelToParent();
  ASSERT_TRUE(parent.Send(message));
  // Serve until told to quit or the test goes away (Unavailable at EOF).
  auto command = parent.Receive(Deadline::Never());
  EXPECT_TRUE(command.ok() || command.status().code() == StatusCode::kUnavailable)
      << command.status();
  (*transport)->Release(buffers.views());
}

}  // namespace

void PrintTo(const Variant& v, std::ostream* out) { *out << v.label; }

std::vector<Variant> Variants() {
  std::vector<Variant> v;
#if FERRY_HAVE_SHM
  auto shm_held = [](OneSidedTransport& t) -> std::optional<size_t> {
    return dynamic_cast<ShmTransport&>(t).GetStats().cached_mappings;
  };
  for (Memory memory : {Memory::kShmArena, Memory::kHeap}) {
    Variant shm;
    shm.label = memory == Memory::kShmArena ? "ShmArena" : "ShmVm";
    shm.name = "shm";
    shm.memory = memory;
    shm.make = [] { return CreateOneSidedTransport("shm"); };
    if (memory == Memory::kShmArena) shm.held = shm_held;  // VM pulls map nothing
    shm.gone_says = "producer process died";
    v.push_back(shm);
  }
#endif
#if FERRY_HAVE_UCX
  for (bool cma : {true, false}) {
    Variant nixl;
    nixl.label = cma ? "NixlCma" : "NixlUcpGet";
    nixl.name = "nixl";
    // Two lanes and a low stripe threshold: items of a few MiB already split
    // across lanes, and small ones spread.
    nixl.make = [cma]() -> StatusOr<std::unique_ptr<OneSidedTransport>> {
      UcxOptions options = UcxOptions::FromEnv();
      options.same_host_cma = cma;
      options.pull_lanes = 2;
      options.stripe_min_bytes = 1 << 20;
      FERRY_ASSIGN_OR_RETURN(std::unique_ptr<UcxTransport> t, UcxTransport::Create(options));
      return std::unique_ptr<OneSidedTransport>(std::move(t));
    };
    // Producers read with CMA and UCP endpoints (ucx_transport_test checks
    // that each path keeps only its own kind).
    nixl.held = [](OneSidedTransport& t) -> std::optional<size_t> {
      const UcxTransport::Stats stats = dynamic_cast<UcxTransport&>(t).stats();
      return stats.cma_peers + stats.cached_endpoints;
    };
    nixl.gone_within = seconds(10);
    nixl.gone_may_abort = true;
    nixl.needs_running_producer = !cma;
    v.push_back(nixl);
  }
#endif
  Variant fake;
  fake.label = "Fake";
  fake.name = "fake";
  fake.fake = true;
  v.push_back(fake);
  return v;
}

PatternedBuffers::PatternedBuffers(Memory memory, const std::vector<BufferSpec>& specs)
    : memory_(memory) {
  for (const BufferSpec& spec : specs) {
    void* data = nullptr;
    if (memory == Memory::kHeap) {
      heap_.emplace_back(spec.size);
      data = heap_.back().data();
    } else {
#if FERRY_HAVE_SHM
      auto block = ShmArena::Global().Allocate(spec.size);
      FERRY_CHECK(block.ok()) << block.status();
      data = *block;
#else
      FERRY_CHECK(false) << "no shm arena in this build";
#endif
    }
    ferry::testing::FillPattern(data, spec.size, spec.seed);
    views_.push_back({data, spec.size});
  }
}

PatternedBuffers::~PatternedBuffers() {
#if FERRY_HAVE_SHM
  if (memory_ == Memory::kShmArena) {
    for (const BufferView& v : views_) ShmArena::Global().Free(v.data);
  }
#endif
}

std::unique_ptr<Producer> StartProcessProducer(const Variant& variant,
                                               const std::vector<BufferSpec>& specs) {
  auto producer = std::make_unique<ProcessProducer>(ChildProcess::ExecTest(
      kProducerTest, {std::string(kProducerEnv) + "=" + variant.label + "|" + EncodeSpecs(specs)}));
  Status s = producer->ReadExports(specs.size());
  if (!s.ok()) {
    ADD_FAILURE() << "the producer did not start: " << s;
    return nullptr;
  }
  return producer;
}

std::unique_ptr<Producer> StartInProcessProducer(std::unique_ptr<OneSidedTransport> transport,
                                                 Memory memory,
                                                 const std::vector<BufferSpec>& specs,
                                                 FakeOneSidedFabric* fabric) {
  auto producer = std::make_unique<InProcessProducer>(std::move(transport), memory, specs, fabric);
  Status s = producer->Export();
  if (!s.ok()) {
    ADD_FAILURE() << "export: " << s;
    return nullptr;
  }
  return producer;
}

}  // namespace ferry::transport::conformance
