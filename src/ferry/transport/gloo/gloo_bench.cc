// gloo_bench: one-way Gloo TCP transfers between two processes on this host
// (1 MiB, 16 MiB, 256 MiB), median GB/s, beside a same-process memcpy of the
// same size from the same run. Buffers are allocated and touched once, then
// reused (warm). Each timed iteration is Send on rank 0 -> Recv on rank 1 ->
// an empty acknowledgement back, measured on rank 0, so the figure includes
// one small-message round trip.
//
//   gloo_bench            # starts rank 1 itself (fork + exec), prints the table
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/testing/child_process.h"
#include "ferry/testing/median.h"
#include "ferry/transport/file_rendezvous_store.h"
#include "ferry/transport/gloo/factory.h"

using namespace ferry;
using namespace ferry::transport;
using ferry::testing::ChildProcess;
using ferry::testing::Median;

namespace {

struct Size {
  size_t bytes;
  int iterations;
};
constexpr Size kSizes[] = {{1u << 20, 200}, {16u << 20, 40}, {256u << 20, 8}};
constexpr int kWarmup = 3;

Status Wait(TwoSidedTransport& t, bool send, int peer, uint64_t tag,
            std::vector<BufferView> views) {
  std::promise<Status> p;
  auto f = p.get_future();
  auto done = [&p](Status s) { p.set_value(std::move(s)); };
  if (send) {
    t.Send(peer, tag, std::move(views), done);
  } else {
    t.Recv(peer, tag, std::move(views), done);
  }
  return f.get();  // bounded by the transport's transfer timeout
}

int RunRank(const std::string& dir, int rank) {
  FileRendezvousStore store(dir);
  GlooOptions options;
  options.prefix = "bench";
  options.rank = rank;
  options.size = 2;
  options.timeout = std::chrono::seconds(30);
  auto made = CreateGlooTransport(store, options);
  if (!made.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", rank, made.status().ToString().c_str());
    return 1;
  }
  auto& t = **made;
  std::vector<char> buf(kSizes[std::size(kSizes) - 1].bytes);
  std::memset(buf.data(), rank + 1, buf.size());
  std::vector<char> copy_dst(buf.size(), 0);
  uint64_t tag = 0;
  if (rank == 0) {
    std::printf("%-8s %14s %14s %8s\n", "size", "gloo GB/s", "memcpy GB/s", "ratio");
  }
  for (const Size& size : kSizes) {
    std::vector<double> gloo_s, memcpy_s;
    for (int i = 0; i < kWarmup + size.iterations; ++i) {
      const uint64_t data_tag = ++tag, ack_tag = ++tag;
      BufferView view{buf.data(), size.bytes};
      if (rank == 1) {
        Status s = Wait(t, false, 0, data_tag, {view});
        if (s.ok()) s = Wait(t, true, 0, ack_tag, {});
        if (!s.ok()) {
          std::fprintf(stderr, "rank 1: %s\n", s.ToString().c_str());
          return 1;
        }
        continue;
      }
      auto start = Clock::now();
      Status s = Wait(t, true, 1, data_tag, {view});
      if (s.ok()) s = Wait(t, false, 1, ack_tag, {});
      auto end = Clock::now();
      if (!s.ok()) {
        std::fprintf(stderr, "rank 0: %s\n", s.ToString().c_str());
        return 1;
      }
      auto copy_start = Clock::now();
      std::memcpy(copy_dst.data(), buf.data(), size.bytes);
      auto copy_end = Clock::now();
      if (i >= kWarmup) {
        gloo_s.push_back(std::chrono::duration<double>(end - start).count());
        memcpy_s.push_back(std::chrono::duration<double>(copy_end - copy_start).count());
      }
    }
    if (rank == 0) {
      const double gloo = size.bytes / Median(gloo_s) / 1e9;
      const double copy = size.bytes / Median(memcpy_s) / 1e9;
      std::printf("%4zu MiB %14.2f %14.2f %7.0f%%\n", size.bytes >> 20, gloo, copy,
                  100 * gloo / copy);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--rank1") return RunRank(argv[2], 1);
  char tmpl[] = "/tmp/ferry-gloo-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  auto rank1 = ChildProcess::ExecSelf({"--rank1", tmpl});
  int rc = RunRank(tmpl, 0);
  // Rank 1 ends with rank 0's last transfer (or at its transport's timeout).
  auto code = rank1->Join(Deadline::After(std::chrono::minutes(2)));
  std::filesystem::remove_all(tmpl);
  std::printf("(warm, reused buffers; median of %d/%d/%d iterations; GB = 1e9 bytes)\n",
              kSizes[0].iterations, kSizes[1].iterations, kSizes[2].iterations);
  return rc != 0 ? rc : (code.ok() ? *code : 1);
}
