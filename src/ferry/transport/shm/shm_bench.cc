// shm_bench: Pull between two processes on this host through the "shm"
// transport, beside a same-process memcpy of the same size from the same run.
//
// A forked producer allocates one buffer per size from the shm arena (ARENA
// descriptors) and one with malloc (VM descriptors: process_vm_readv), fills
// and exports them, and idles. The consumer (this process) pulls each into a
// warm destination (allocated and touched once, reused). "first" is the first
// pull of a buffer (opens and maps the block, faults the mapping in); the
// median is over the following pulls of the same buffers (steady state: the
// mapping is cached). memcpy (glibc) copies a warm private buffer into the
// same destination; it takes turns with the pulls, iteration by iteration.
//
//   shm_bench             # prints the table
//   shm_bench --quick     # fewer iterations
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/testing/child_process.h"
#include "ferry/testing/median.h"
#include "ferry/testing/pattern.h"
#include "ferry/transport/shm/shm_transport.h"

using namespace ferry;
using namespace ferry::transport;
using ferry::testing::ChildProcess;
using ferry::testing::FillPattern;
using ferry::testing::FirstMismatch;
using ferry::testing::Median;
using ferry::testing::MessageChannel;

namespace {

struct Size {
  uint64_t bytes;
  int iterations;
  const char* label;
};
constexpr Size kSizes[] = {
    {uint64_t{4} << 10, 2000, "4 KiB"},
    {uint64_t{1} << 20, 400, "1 MiB"},
    {uint64_t{16} << 20, 60, "16 MiB"},
    {uint64_t{256} << 20, 15, "256 MiB"},
};

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void* WarmBuffer(uint64_t n) {
  void* p = std::aligned_alloc(4096, (n + 4095) / 4096 * 4096);
  std::memset(p, 0x11, n);
  return p;
}

// Producer: buffer 2*i is size i from the arena, 2*i+1 from malloc.
int ProducerMain(MessageChannel& ch) {
  ShmTransport shm;
  std::vector<BufferView> views;
  uint64_t seed = 1;
  for (const Size& s : kSizes) {
    auto block = ShmArena::Global().Allocate(s.bytes);
    if (!block.ok()) return 2;
    void* heap = std::malloc(s.bytes);
    FillPattern(*block, s.bytes, seed++);
    FillPattern(heap, s.bytes, seed++);
    views.push_back({*block, s.bytes});
    views.push_back({heap, s.bytes});
  }
  auto e = shm.Export(views);
  if (!e.ok()) return 3;
  std::vector<std::string> message = {e->endpoint};
  message.insert(message.end(), e->descriptors.begin(), e->descriptors.end());
  if (!ch.Send(message)) return 4;
  auto done = ch.Receive(Deadline::After(std::chrono::minutes(30)));
  return done.ok() ? 0 : 5;
}

struct Row {
  double memcpy_gbps = 0;
  double arena_gbps = 0, arena_first_gbps = 0;
  double vm_gbps = 0, vm_first_gbps = 0;
  bool ok = true;
};

// Times one pull into `dst`, or returns a negative number on failure.
double TimePull(ShmTransport& shm, const PullItem& item) {
  const auto start = Clock::now();
  Status st = shm.Pull({&item, 1}, Deadline::After(std::chrono::seconds(60)));
  const double t = Seconds(start);
  if (!st.ok()) {
    std::fprintf(stderr, "pull failed: %s\n", st.ToString().c_str());
    return -1;
  }
  return t;
}

// Memcpy and both pull kinds take turns, iteration by iteration, so that the
// noise of a shared host hits them alike.
Row Measure(ShmTransport& shm, const std::string& endpoint, const std::string& arena_descriptor,
            const std::string& vm_descriptor, const Size& s, uint64_t arena_seed,
            uint64_t vm_seed) {
  Row row;
  void* dst = WarmBuffer(s.bytes);
  void* src = WarmBuffer(s.bytes);
  const PullItem arena{endpoint, arena_descriptor, {dst, s.bytes}};
  const PullItem vm{endpoint, vm_descriptor, {dst, s.bytes}};
  auto check = [&](uint64_t seed) {
    if (FirstMismatch(dst, s.bytes, seed) != -1) {
      std::fprintf(stderr, "pulled bytes differ (%s)\n", s.label);
      row.ok = false;
    }
  };
  const double arena_first = TimePull(shm, arena);
  check(arena_seed);
  const double vm_first = TimePull(shm, vm);
  check(vm_seed);
  std::vector<double> tm, ta, tv;
  for (int i = 0; i < s.iterations && row.ok; ++i) {
    const auto start = Clock::now();
    std::memcpy(dst, src, s.bytes);
    tm.push_back(Seconds(start));
    ta.push_back(TimePull(shm, arena));
    tv.push_back(TimePull(shm, vm));
  }
  check(vm_seed);
  if (TimePull(shm, arena) < 0) row.ok = false;
  check(arena_seed);
  for (const auto* v : {&ta, &tv}) {
    if (std::any_of(v->begin(), v->end(), [](double t) { return t < 0; })) row.ok = false;
  }
  if (row.ok && arena_first > 0 && vm_first > 0) {
    const double b = static_cast<double>(s.bytes);
    row.memcpy_gbps = b / Median(tm) / 1e9;
    row.arena_gbps = b / Median(ta) / 1e9;
    row.vm_gbps = b / Median(tv) / 1e9;
    row.arena_first_gbps = b / arena_first / 1e9;
    row.vm_first_gbps = b / vm_first / 1e9;
  } else {
    row.ok = false;
  }
  std::free(src);
  std::free(dst);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  ChildProcess producer(ProducerMain);
  auto message = producer.channel().Receive(Deadline::After(std::chrono::minutes(2)));
  if (!message.ok() || message->size() != 1 + 2 * std::size(kSizes)) {
    std::fprintf(stderr, "producer failed to start\n");
    return 1;
  }
  const std::string endpoint = (*message)[0];

  ShmTransport shm;
  std::printf("shm transport: pull from another process into a warm destination (median GB/s)\n");
  std::printf("%-8s %8s | %8s %6s %8s | %8s %6s %8s\n", "size", "memcpy", "arena", "x", "1st", "vm",
              "x", "1st");
  bool all_ok = true;
  uint64_t seed = 1;
  for (const Size& base : kSizes) {
    Size s = base;
    if (quick) s.iterations = std::max(3, s.iterations / 5);
    const size_t index = &base - kSizes;
    const uint64_t arena_seed = seed++, vm_seed = seed++;
    Row r = Measure(shm, endpoint, (*message)[1 + 2 * index], (*message)[2 + 2 * index], s,
                    arena_seed, vm_seed);
    all_ok = all_ok && r.ok;
    std::printf("%-8s %8.2f | %8.2f %6.2f %8.2f | %8.2f %6.2f %8.2f\n", s.label, r.memcpy_gbps,
                r.arena_gbps, r.arena_gbps / r.memcpy_gbps, r.arena_first_gbps, r.vm_gbps,
                r.vm_gbps / r.memcpy_gbps, r.vm_first_gbps);
  }
  std::printf(
      "arena = ARENA descriptors (cached shared mapping, one memcpy); vm = process_vm_readv;\n"
      "x = fraction of memcpy; 1st = first pull of that buffer (maps and faults the block).\n");
  producer.channel().Send({"exit"});
  auto code = producer.Join(Deadline::After(std::chrono::seconds(30)));
  if (!code.ok() || *code != 0) all_ok = false;
  return all_ok ? 0 : 1;
}
