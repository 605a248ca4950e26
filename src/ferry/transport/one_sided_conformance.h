// The harness of the one-sided transport conformance suite
// (one_sided_conformance_test.cc), test-only: the variants of the backends
// this build has, buffers holding payload patterns, guarded destinations,
// and producers of exported buffers.
//
// A process producer is this test binary re-executed (fork + exec, so no UCX
// state crosses the fork) running OneSidedConformanceChild.DISABLED_Producer
// (defined in one_sided_conformance.cc, so that file must be linked into the
// test binary): it exports patterned buffers with the variant's backend,
// sends the endpoint and descriptors over a ChildProcess channel, and stays
// alive until told "q" or its parent goes away. An in-process producer is a
// transport of the test's own process (for the fake, another endpoint of its
// FakeOneSidedFabric).
//
// THREAD CONTRACT: Variants, PatternedBuffers and Destination are plain
// values (externally synchronized). A Producer is used by the test's thread;
// Kill may come from another thread while pulls from it run.
//
//   for (const Variant& v : Variants()) { ... }   // gtest ValuesIn(Variants())
//   std::unique_ptr<Producer> p = StartProcessProducer(variant, {{4096, /*seed=*/1}});
//   Destination dst(4096);
//   PullItem item{p->endpoint(), p->descriptor(0), dst.view()};
//   ASSERT_TRUE(transport->Pull({&item, 1}, Deadline::After(kPullWait)).ok());
//   EXPECT_EQ(dst.Check(/*seed=*/1), -1);
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "ferry/status.h"
#include "ferry/testing/pattern.h"
#include "ferry/transport/fake_one_sided_transport.h"
#include "ferry/transport/one_sided_transport.h"

namespace ferry::transport::conformance {

// Bound on one pull of at most 64 MiB (UCP get over tcp under a sanitizer
// is the slow case).
inline constexpr std::chrono::seconds kPullWait{60};

// One exported buffer of a producer: `size` bytes of Pattern(size, seed).
struct BufferSpec {
  uint64_t size;
  uint64_t seed;
};

// Where a producer's buffers live.
enum class Memory { kHeap, kShmArena };

// One way of running a backend, and what its tests may expect of it.
struct Variant {
  std::string label;  // the suffix of the test names
  std::string name;   // OneSidedTransport::name(), and its registry name
  Memory memory = Memory::kHeap;
  bool fake = false;  // the in-process FakeOneSidedFabric
  // Makes a transport of this process with this variant's options; null for
  // the fake (the fixture's fabric makes those).
  std::function<StatusOr<std::unique_ptr<OneSidedTransport>>()> make;
  // The connections or mappings `t` keeps to producers, where the backend
  // counts them: a gone producer's must go, a zero-byte pull makes none.
  std::function<std::optional<size_t>(OneSidedTransport&)> held;
  // A pull from a producer that is gone fails Unavailable within this; UCX
  // may report a loss that interrupts a get in flight as Aborted instead.
  std::chrono::milliseconds gone_within{1000};
  bool gone_may_abort = false;
  std::string gone_says;  // a phrase of that failure's message, if any
  // Pulls need the producer's threads to run (UCP get emulated over tcp,
  // where the producer's worker answers every get).
  bool needs_running_producer = false;
};

void PrintTo(const Variant& v, std::ostream* out);

// Every variant this build has, the fake last.
std::vector<Variant> Variants();

// Buffers holding their patterns, in heap or shm-arena memory, for as long as
// this object lives.
class PatternedBuffers {
 public:
  PatternedBuffers(Memory memory, const std::vector<BufferSpec>& specs);
  ~PatternedBuffers();
  PatternedBuffers(const PatternedBuffers&) = delete;
  PatternedBuffers& operator=(const PatternedBuffers&) = delete;

  const std::vector<BufferView>& views() const { return views_; }
  BufferView view(size_t i) const { return views_.at(i); }

 private:
  const Memory memory_;
  std::vector<std::vector<uint8_t>> heap_;
  std::vector<BufferView> views_;
};

// A destination for `size` bytes with one guard byte past its end, filled
// with junk: a pull must write exactly the `size` bytes.
class Destination {
 public:
  explicit Destination(uint64_t size) : bytes_(size + 1, kJunk) {}
  BufferView view() { return {bytes_.data(), bytes_.size() - 1}; }
  // The first byte that differs from the pattern for `seed`, or -1; -2 if
  // the guard byte changed.
  int64_t Check(uint64_t seed) const {
    if (bytes_.back() != kJunk) return -2;
    return ferry::testing::FirstMismatch(bytes_.data(), bytes_.size() - 1, seed);
  }
  bool IsJunk() const {
    return std::all_of(bytes_.begin(), bytes_.end(), [](uint8_t b) { return b == kJunk; });
  }

 private:
  static constexpr uint8_t kJunk = 0xee;
  std::vector<uint8_t> bytes_;
};

// A producer of exported, patterned buffers.
class Producer {
 public:
  virtual ~Producer() = default;
  const std::string& endpoint() const { return exported_.endpoint; }
  const std::string& descriptor(size_t i) const { return exported_.descriptors.at(i); }
  // Gone, and reaped: on return pulls from it must fail.
  virtual void Kill() = 0;
  // Gone, and not reaped (a zombie).
  virtual void KillNoReap() = 0;
  // Alive but not scheduled (SIGSTOP), then scheduled again.
  virtual void Stop() = 0;
  virtual void Continue() = 0;

 protected:
  ExportedBuffers exported_;
};

// A producer in another process, exporting `specs` with `variant`'s backend
// from its memory; null (and a test failure) if it did not start. Its
// destructor tells a live one to exit and expects a clean exit.
std::unique_ptr<Producer> StartProcessProducer(const Variant& variant,
                                               const std::vector<BufferSpec>& specs);

// A producer in this process: `transport` exporting `specs` from `memory`
// until the producer is destroyed; null (and a test failure) if Export
// failed. With `fabric` (the fake's, which made `transport`) Kill marks its
// endpoint dead there; without, it cannot be killed (it aborts).
std::unique_ptr<Producer> StartInProcessProducer(std::unique_ptr<OneSidedTransport> transport,
                                                 Memory memory,
                                                 const std::vector<BufferSpec>& specs,
                                                 FakeOneSidedFabric* fabric = nullptr);

}  // namespace ferry::transport::conformance
