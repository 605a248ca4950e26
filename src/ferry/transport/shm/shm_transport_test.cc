// What only the shm transport does: ARENA and VM descriptors and their
// statistics, the mapping cache and its sweeper, freed blocks, and bad input
// in its own formats. The behaviour every one-sided transport shares is in
// ../one_sided_conformance_test.cc, which runs it with the producer's buffers
// in the arena and in heap memory.
//
// Each producer here is a fork()ed child that allocates and fills its
// buffers, exports them and sends the endpoint and descriptors over a
// ChildProcess channel, then serves commands ("free <i>", "exit") until told
// to exit.
#include "ferry/transport/shm/shm_transport.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ferry/testing/child_process.h"
#include "ferry/testing/deadline.h"
#include "ferry/testing/pattern.h"
#include "ferry/transport/shm/factory.h"

namespace ferry::transport {
namespace {

using ferry::testing::ChildProcess;
using ferry::testing::FillPattern;
using ferry::testing::FirstMismatch;
using ferry::testing::MessageChannel;
using ferry::testing::Soon;
using ferry::testing::WaitUntil;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = kKiB * 1024;

struct BufferSpec {
  uint64_t nbytes = 0;
  bool arena = true;  // else plain malloc memory (VM descriptors)
  uint64_t seed = 1;
};

struct Producer {
  std::unique_ptr<ChildProcess> process;
  std::string endpoint;
  std::vector<std::string> descriptors;

  Status Command(const std::string& command) {
    if (!process->channel().Send({command})) return Status::Unavailable("producer gone");
    FERRY_ASSIGN_OR_RETURN(auto reply, process->channel().Receive(Soon()));
    if (reply.size() != 1 || reply[0] != "ok")
      return Status::Internal("producer refused " + command);
    return Status::Ok();
  }
  // Tells the child to exit and checks that it did cleanly.
  Status Finish() {
    if (!process->channel().Send({"exit"})) return Status::Unavailable("producer gone");
    FERRY_ASSIGN_OR_RETURN(int code, process->Join(Soon()));
    if (code != 0) return Status::Internal("producer exited with " + std::to_string(code));
    return Status::Ok();
  }
};

// The child's side. `pool_blocks`: false makes freed arena blocks close at
// once (a private arena without a pool) so "free" really unmaps.
int ProducerMain(MessageChannel& ch, const std::vector<BufferSpec>& specs, bool pool_blocks) {
  ShmArena::Options options = ShmArena::OptionsFromEnv();
  options.max_pooled_bytes = 0;
  ShmArena private_arena(options);
  ShmArena& arena = pool_blocks ? ShmArena::Global() : private_arena;
  ShmTransportOptions topts;
  topts.arena = &arena;
  ShmTransport transport(topts);

  std::vector<BufferView> views;
  for (const BufferSpec& spec : specs) {
    void* data = nullptr;
    if (spec.arena) {
      auto p = arena.Allocate(spec.nbytes);
      if (!p.ok()) return 10;
      data = *p;
    } else {
      data = std::malloc(spec.nbytes == 0 ? 1 : spec.nbytes);
    }
    FillPattern(data, spec.nbytes, spec.seed);
    views.push_back({data, spec.nbytes});
  }
  auto exported = transport.Export(views);
  if (!exported.ok()) return 11;
  std::vector<std::string> message = {exported->endpoint};
  for (auto& d : exported->descriptors) message.push_back(d);
  if (!ch.Send(message)) return 12;
  while (true) {
    auto command = ch.Receive(Deadline::After(std::chrono::minutes(5)));
    if (!command.ok() || command->size() != 1) return 13;
    const std::string& c = (*command)[0];
    if (c == "exit") return 0;
    if (c.rfind("free ", 0) == 0) {
      const size_t i = std::stoul(c.substr(5));
      if (i >= views.size() || !specs[i].arena) return 14;
      arena.Free(views[i].data);
      if (!ch.Send({"ok"})) return 15;
      continue;
    }
    return 16;
  }
}

StatusOr<Producer> StartProducer(std::vector<BufferSpec> specs, bool pool_blocks = true) {
  Producer p;
  p.process = std::make_unique<ChildProcess>(
      [specs, pool_blocks](MessageChannel& ch) { return ProducerMain(ch, specs, pool_blocks); });
  FERRY_ASSIGN_OR_RETURN(auto message, p.process->channel().Receive(Soon()));
  if (message.size() != specs.size() + 1)
    return Status::Internal("short message from the producer");
  p.endpoint = message[0];
  p.descriptors.assign(message.begin() + 1, message.end());
  return p;
}

// A destination buffer per item, pre-filled with junk.
struct Destinations {
  explicit Destinations(const std::vector<BufferSpec>& specs) {
    for (const BufferSpec& s : specs) {
      buffers.emplace_back(s.nbytes + 1, 0xee);  // +1: never a null data()
    }
  }
  BufferView View(size_t i) { return {buffers[i].data(), buffers[i].size() - 1}; }
  std::vector<std::vector<uint8_t>> buffers;
};

TEST(ShmTransportTest, PullsArenaAndVmBuffersOfEverySize) {
  std::vector<BufferSpec> specs;
  uint64_t seed = 1;
  for (uint64_t n : {uint64_t{0}, 4 * kKiB, kMiB, 64 * kMiB}) {
    specs.push_back({n, true, seed++});
    specs.push_back({n, false, seed++});
  }
  auto producer = StartProducer(specs);
  ASSERT_TRUE(producer.ok()) << producer.status();
  ShmTransport shm;
  Destinations dst(specs);
  std::vector<PullItem> items;
  for (size_t i = 0; i < specs.size(); ++i)
    items.push_back({producer->endpoint, producer->descriptors[i], dst.View(i)});
  Status s = shm.Pull(items, Soon());
  ASSERT_TRUE(s.ok()) << s;
  for (size_t i = 0; i < specs.size(); ++i) {
    EXPECT_EQ(FirstMismatch(dst.buffers[i].data(), specs[i].nbytes, specs[i].seed), -1)
        << "item " << i << " (" << specs[i].nbytes << " bytes, "
        << (specs[i].arena ? "arena" : "vm") << ")";
    EXPECT_EQ(dst.buffers[i].back(), 0xee) << "wrote past the destination of item " << i;
  }
  ShmTransport::Stats st = shm.GetStats();
  EXPECT_EQ(st.arena_items, 3u) << "zero-byte items move nothing";
  EXPECT_EQ(st.vm_items, 3u);
  EXPECT_EQ(st.arena_bytes, 4 * kKiB + kMiB + 64 * kMiB);
  EXPECT_EQ(st.vm_bytes, 4 * kKiB + kMiB + 64 * kMiB);
  EXPECT_EQ(st.map_misses, 3u);
  EXPECT_EQ(st.cached_mappings, 3u);
  EXPECT_TRUE(producer->Finish().ok());
}

TEST(ShmTransportTest, SecondPullReusesTheCachedMapping) {
  std::vector<BufferSpec> specs = {{8 * kMiB, true, 5}};
  auto producer = StartProducer(specs);
  ASSERT_TRUE(producer.ok());
  ShmTransport shm;
  Destinations dst(specs);
  PullItem item{producer->endpoint, producer->descriptors[0], dst.View(0)};
  ASSERT_TRUE(shm.Pull({&item, 1}, Soon()).ok());
  ShmTransport::Stats st = shm.GetStats();
  EXPECT_EQ(st.map_misses, 1u);
  EXPECT_EQ(st.map_hits, 0u);
  EXPECT_EQ(st.cached_mappings, 1u);
  EXPECT_EQ(st.mapped_bytes, 8 * kMiB);

  std::memset(dst.buffers[0].data(), 0, 8 * kMiB);
  ASSERT_TRUE(shm.Pull({&item, 1}, Soon()).ok());
  EXPECT_EQ(FirstMismatch(dst.buffers[0].data(), 8 * kMiB, 5), -1);
  st = shm.GetStats();
  EXPECT_EQ(st.map_misses, 1u);
  EXPECT_EQ(st.map_hits, 1u);
  EXPECT_EQ(st.cached_mappings, 1u);

  shm.DropMappings();
  EXPECT_EQ(shm.GetStats().cached_mappings, 0u);
  EXPECT_TRUE(producer->Finish().ok());
}

TEST(ShmTransportTest, MappingCacheIsBoundedByBytes) {
  std::vector<BufferSpec> specs = {
      {kMiB, true, 1}, {kMiB, true, 2}, {kMiB, true, 3}, {4 * kMiB, true, 4}};
  auto producer = StartProducer(specs);
  ASSERT_TRUE(producer.ok());
  ShmTransportOptions options;
  options.map_cache_bytes = 2 * kMiB;
  ShmTransport shm(options);
  Destinations dst(specs);
  for (size_t i = 0; i < specs.size(); ++i) {
    PullItem item{producer->endpoint, producer->descriptors[i], dst.View(i)};
    Status s = shm.Pull({&item, 1}, Soon());
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(FirstMismatch(dst.buffers[i].data(), specs[i].nbytes, specs[i].seed), -1);
    EXPECT_LE(shm.GetStats().mapped_bytes, 2 * kMiB);
  }
  ShmTransport::Stats st = shm.GetStats();
  EXPECT_EQ(st.cached_mappings, 2u) << "the 4 MiB block is mapped for its pull only";
  EXPECT_EQ(st.evictions, 1u);
  EXPECT_EQ(st.map_misses, 4u);
  EXPECT_TRUE(producer->Finish().ok());
}

TEST(ShmTransportTest, ConcurrentPullsShareTheCache) {
  std::vector<BufferSpec> specs = {{4 * kMiB, true, 7}, {4 * kMiB, false, 8}};
  auto producer = StartProducer(specs);
  ASSERT_TRUE(producer.ok());
  ShmTransport shm;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      Destinations dst(specs);
      for (int r = 0; r < 10; ++r) {
        std::vector<PullItem> items = {{producer->endpoint, producer->descriptors[0], dst.View(0)},
                                       {producer->endpoint, producer->descriptors[1], dst.View(1)}};
        if (!shm.Pull(items, Soon()).ok()) ++bad;
        for (size_t i = 0; i < specs.size(); ++i) {
          if (FirstMismatch(dst.buffers[i].data(), specs[i].nbytes, specs[i].seed) != -1) ++bad;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  ShmTransport::Stats st = shm.GetStats();
  EXPECT_EQ(st.cached_mappings, 1u);
  EXPECT_EQ(st.arena_items, 40u);
  EXPECT_EQ(st.map_hits + st.map_misses, 40u);
  EXPECT_TRUE(producer->Finish().ok());
}

TEST(ShmTransportTest, PullFromThisProcess) {
  ShmTransport shm;
  auto block = ShmArena::Global().Allocate(2 * kMiB);
  ASSERT_TRUE(block.ok());
  FillPattern(*block, 2 * kMiB, 3);
  std::vector<uint8_t> heap(3 * kMiB);
  FillPattern(heap.data(), heap.size(), 4);
  auto e = shm.Export({{*block, 2 * kMiB}, {heap.data(), heap.size()}});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(IsLocalShmEndpoint(e->endpoint));
  std::vector<uint8_t> d0(2 * kMiB), d1(3 * kMiB);
  std::vector<PullItem> items = {{e->endpoint, e->descriptors[0], {d0.data(), d0.size()}},
                                 {e->endpoint, e->descriptors[1], {d1.data(), d1.size()}}};
  ASSERT_TRUE(shm.Pull(items, Soon()).ok());
  EXPECT_EQ(FirstMismatch(d0.data(), d0.size(), 3), -1);
  EXPECT_EQ(FirstMismatch(d1.data(), d1.size(), 4), -1);
  EXPECT_EQ(shm.GetStats().arena_items, 1u);
  EXPECT_EQ(shm.GetStats().vm_items, 1u);
  shm.Release({{*block, 2 * kMiB}, {heap.data(), heap.size()}});
  shm.DropMappings();
  ShmArena::Global().Free(*block);
}

TEST(ShmTransportTest, ExportRefusesABufferRunningPastItsBlock) {
  ShmTransport shm;
  auto block = ShmArena::Global().Allocate(kMiB);
  ASSERT_TRUE(block.ok());
  auto e = shm.Export({{static_cast<uint8_t*>(*block) + 4096, kMiB}});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument) << e.status();
  ShmArena::Global().Free(*block);
}

TEST(ShmTransportTest, SweeperDropsMappingsOfFreedBlocksWithoutAPull) {
  std::vector<BufferSpec> specs = {{kMiB, true, 1}, {kMiB, true, 2}};
  auto producer = StartProducer(specs, /*pool_blocks=*/false);
  ASSERT_TRUE(producer.ok());
  ShmTransportOptions options;
  options.sweep_interval = std::chrono::milliseconds(10);
  ShmTransport shm(options);
  Destinations dst(specs);
  std::vector<PullItem> items = {{producer->endpoint, producer->descriptors[0], dst.View(0)},
                                 {producer->endpoint, producer->descriptors[1], dst.View(1)}};
  ASSERT_TRUE(shm.Pull(items, Soon()).ok());
  ASSERT_EQ(shm.GetStats().cached_mappings, 2u);
  ASSERT_TRUE(producer->Command("free 0").ok());
  EXPECT_TRUE(WaitUntil([&] { return shm.GetStats().cached_mappings == 1; }))
      << "the freed block's mapping goes, the other stays";
  EXPECT_EQ(shm.GetStats().mapped_bytes, kMiB);
  producer->process->Kill();
  EXPECT_TRUE(WaitUntil([&] { return shm.GetStats().cached_mappings == 0; }))
      << "a dead producer's mappings go";
}

TEST(ShmTransportTest, FreedArenaBlockIsUnavailableWhileTheProducerLives) {
  std::vector<BufferSpec> specs = {{kMiB, true, 1}, {kMiB, true, 2}};
  auto producer = StartProducer(specs, /*pool_blocks=*/false);
  ASSERT_TRUE(producer.ok());
  ShmTransportOptions options;
  options.sweep_interval = std::chrono::milliseconds(0);  // check cached mappings before every pull
  ShmTransport shm(options);
  Destinations dst(specs);
  PullItem cached{producer->endpoint, producer->descriptors[0], dst.View(0)};
  ASSERT_TRUE(shm.Pull({&cached, 1}, Soon()).ok());
  ASSERT_TRUE(producer->Command("free 0").ok());
  ASSERT_TRUE(producer->Command("free 1").ok());

  Status s = shm.Pull({&cached, 1}, Soon());  // cached mapping, block closed: the sweep drops it
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s;
  EXPECT_EQ(s.message().find("died"), std::string::npos) << "the producer lives: " << s;
  EXPECT_EQ(shm.GetStats().cached_mappings, 0u);

  PullItem fresh{producer->endpoint, producer->descriptors[1], dst.View(1)};
  s = shm.Pull({&fresh, 1}, Soon());  // never mapped
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s;
  EXPECT_TRUE(producer->Finish().ok());
}

// ---- Bad input ----------------------------------------------------------------

class ShmBadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto block = ShmArena::Global().Allocate(kMiB);
    ASSERT_TRUE(block.ok());
    block_ = *block;
    auto e = shm_.Export({{block_, kMiB}, {heap_.data(), heap_.size()}});
    ASSERT_TRUE(e.ok());
    exported_ = *e;
  }
  void TearDown() override {
    shm_.DropMappings();
    ShmArena::Global().Free(block_);
  }
  Status PullOne(std::string_view endpoint, std::string_view descriptor, uint64_t nbytes) {
    dst_.assign(nbytes + 1, 0);
    PullItem item{endpoint, descriptor, {dst_.data(), nbytes}};
    return shm_.Pull({&item, 1}, Soon());
  }

  ShmTransport shm_;
  void* block_ = nullptr;
  std::vector<uint8_t> heap_ = std::vector<uint8_t>(4096, 1);
  std::vector<uint8_t> dst_;
  ExportedBuffers exported_;
};

TEST_F(ShmBadInputTest, MalformedDescriptorsAreInvalidArgument) {
  const std::string& arena = exported_.descriptors[0];
  const std::string& vm = exported_.descriptors[1];
  ASSERT_TRUE(PullOne(exported_.endpoint, arena, kMiB).ok());
  ASSERT_TRUE(PullOne(exported_.endpoint, vm, 4096).ok());
  // Forms of its own layout (the generic ones are in the conformance suite):
  // a VM descriptor cut inside its fields, an ARENA-sized one without magic.
  for (const std::string& bad : {vm.substr(0, 10), std::string(36, '\0')}) {
    Status s = PullOne(exported_.endpoint, bad, kMiB);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  }
  std::string wrong_kind = arena;
  wrong_kind[4] = 9;
  EXPECT_EQ(PullOne(exported_.endpoint, wrong_kind, kMiB).code(), StatusCode::kInvalidArgument);
  std::string vm_as_arena = vm;
  vm_as_arena[4] = 1;  // an ARENA kind with a VM descriptor's length
  EXPECT_EQ(PullOne(exported_.endpoint, vm_as_arena, 4096).code(), StatusCode::kInvalidArgument);
  // A well-formed ARENA descriptor whose range lies past the block.
  std::string past = arena;
  const uint64_t offset = kMiB - 10;
  std::memcpy(past.data() + 8 + 4 + 8, &offset, 8);
  EXPECT_EQ(PullOne(exported_.endpoint, past, kMiB).code(), StatusCode::kInvalidArgument);
}

TEST_F(ShmBadInputTest, MalformedEndpointIsInvalidArgument) {
  for (std::string bad :
       {std::string(), std::string("shm1"), std::string("ucx:abc"), exported_.endpoint + ":1",
        std::string("shm1:id:-3:5"), std::string("shm1:id:12:x")}) {
    EXPECT_EQ(PullOne(bad, exported_.descriptors[1], 4096).code(), StatusCode::kInvalidArgument)
        << bad;
    EXPECT_FALSE(IsLocalShmEndpoint(bad)) << bad;
  }
}

TEST_F(ShmBadInputTest, EndpointOfAnotherHostIsFailedPreconditionNamingNixl) {
  auto ep = ShmEndpoint::Decode(exported_.endpoint);
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->pid, getpid());
  EXPECT_TRUE(IsLocalShmEndpoint(exported_.endpoint));
  ep->boot_id = "00000000-1111-2222-3333-444444444444";
  const std::string remote = ep->Encode();
  EXPECT_FALSE(IsLocalShmEndpoint(remote));
  Status s = PullOne(remote, exported_.descriptors[0], kMiB);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("nixl"), std::string::npos) << s;
}

TEST_F(ShmBadInputTest, ReusedPidIsUnavailable) {
  auto ep = ShmEndpoint::Decode(exported_.endpoint);
  ASSERT_TRUE(ep.ok());
  ep->start_time += 1;  // our pid, another start time: a different process
  Status s = PullOne(ep->Encode(), exported_.descriptors[1], 4096);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s;
}

}  // namespace
}  // namespace ferry::transport
