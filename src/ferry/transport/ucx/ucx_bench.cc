// ucx_bench: UcxTransport::Pull between two processes on this host (4 KiB,
// 1 MiB, 16 MiB, 256 MiB), median GB/s, beside a same-process memcpy of the
// same size from the same run. A Pull is one-sided: the figure is the whole
// call, nothing else. Columns:
//   ucp get      the UCP path (FERRY_UCX_CMA=0 for this consumer)
//   cma          the same-host path (process_vm_readv), the default here
//   memcpy       one thread, same process, same size
// The producer (this program re-executed) exports one 256 MiB buffer as four
// regions (one per size); the consumer pulls into a destination allocated and
// touched once, then reused (warm). Every buffer starts 64 bytes into a page,
// where PyTorch's CPU allocator (posix_memalign to 64) puts large tensors:
// the kernel's copy is 2-4x slower when source and destination sit at
// different offsets modulo 32 (e.g. a page-aligned source into a malloc'd
// destination), which would measure the allocator, not the transport.
//
//   ucx_bench                          # UCX_TLS / FERRY_UCX_* from the environment
//   UCX_TLS=tcp FERRY_UCX_PULL_LANES=1 ucx_bench
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
#include "ferry/transport/ucx/ucx_transport.h"

using namespace ferry;
using namespace ferry::transport;
using ferry::testing::ChildProcess;
using ferry::testing::FillPattern;
using ferry::testing::FirstMismatch;
using ferry::testing::Median;

namespace {

struct Size {
  uint64_t bytes;
  int iterations;
};
constexpr Size kSizes[] = {{4u << 10, 2000}, {1u << 20, 300}, {16u << 20, 60}, {256u << 20, 10}};
constexpr int kWarmup = 3;
constexpr uintptr_t kPage = 4096;
constexpr uint64_t kSeed = 1;

// 64 bytes into the first page boundary of `storage` (kPage bytes of slack).
char* AtTensorOffset(std::vector<char>& storage) {
  const uintptr_t base = reinterpret_cast<uintptr_t>(storage.data());
  return reinterpret_cast<char*>((base + kPage - 1) / kPage * kPage + 64);
}

int RunProducer() {
  auto made = UcxTransport::Create();
  if (!made.ok()) {
    std::fprintf(stderr, "producer: %s\n", made.status().ToString().c_str());
    return 1;
  }
  auto& t = **made;
  const uint64_t n = kSizes[std::size(kSizes) - 1].bytes;
  std::vector<char> storage(n + kPage);
  char* buf = AtTensorOffset(storage);
  FillPattern(buf, n, kSeed);  // each smaller region is a prefix: its own pattern
  std::vector<BufferView> views;
  for (const Size& size : kSizes) views.push_back({buf, size.bytes});
  auto exported = t.Export(views);
  if (!exported.ok()) {
    std::fprintf(stderr, "producer: %s\n", exported.status().ToString().c_str());
    return 1;
  }
  std::vector<std::string> message = {exported->endpoint};
  message.insert(message.end(), exported->descriptors.begin(), exported->descriptors.end());
  auto parent = ChildProcess::ChannelToParent();
  if (!parent.Send(message)) return 1;
  (void)parent.Receive(Deadline::Never());  // "q" or EOF: done
  t.Release(views);
  return 0;
}

// Median seconds of `iterations` Pulls of `item` (after a warm-up), or a
// negative value on failure.
double TimePull(UcxTransport& t, const PullItem& item, int iterations) {
  std::vector<double> seconds;
  for (int i = 0; i < kWarmup + iterations; ++i) {
    auto start = Clock::now();
    Status st = t.Pull({&item, 1}, Deadline::After(std::chrono::seconds(60)));
    auto end = Clock::now();
    if (!st.ok()) {
      std::fprintf(stderr, "pull of %llu bytes: %s\n",
                   static_cast<unsigned long long>(item.dst.nbytes), st.ToString().c_str());
      return -1;
    }
    if (i >= kWarmup) seconds.push_back(std::chrono::duration<double>(end - start).count());
  }
  const int64_t wrong = FirstMismatch(item.dst.data, item.dst.nbytes, kSeed);
  if (wrong >= 0) {
    std::fprintf(stderr, "pull of %llu bytes: wrong byte at %lld\n",
                 static_cast<unsigned long long>(item.dst.nbytes), static_cast<long long>(wrong));
    return -1;
  }
  return Median(seconds);
}

int RunConsumer(ChildProcess& producer) {
  auto message = producer.channel().Receive(Deadline::After(std::chrono::seconds(60)));
  if (!message.ok() || message->size() != 1 + std::size(kSizes)) {
    std::fprintf(stderr, "consumer: the producer did not start: %s\n",
                 message.status().ToString().c_str());
    return 1;
  }
  const std::string endpoint = (*message)[0];
  const std::vector<std::string> descriptors(message->begin() + 1, message->end());
  UcxOptions cma_options = UcxOptions::FromEnv();
  cma_options.same_host_cma = true;
  UcxOptions ucp_options = cma_options;
  ucp_options.same_host_cma = false;
  auto cma = UcxTransport::Create(cma_options);
  auto ucp = UcxTransport::Create(ucp_options);
  if (!cma.ok() || !ucp.ok()) {
    std::fprintf(stderr, "consumer: %s %s\n", cma.status().ToString().c_str(),
                 ucp.status().ToString().c_str());
    return 1;
  }
  const uint64_t max_bytes = kSizes[std::size(kSizes) - 1].bytes;
  std::vector<char> dst_storage(max_bytes + kPage, 1), src_storage(max_bytes + kPage, 2),
      copy_storage(max_bytes + kPage, 3);
  char* dst = AtTensorOffset(dst_storage);
  char* copy_src = AtTensorOffset(src_storage);
  char* copy_dst = AtTensorOffset(copy_storage);
  const char* tls = std::getenv("UCX_TLS");
  std::printf("UCX_TLS=%s lanes=%d stripe_min=%llu\n", tls != nullptr ? tls : "(unset)",
              (*cma)->stats().lanes, static_cast<unsigned long long>(cma_options.stripe_min_bytes));
  std::printf("%-9s %10s %10s %12s\n", "size", "ucp get", "cma", "memcpy GB/s");
  for (size_t s = 0; s < std::size(kSizes); ++s) {
    const Size& size = kSizes[s];
    const BufferView view{dst, size.bytes};
    // UCP over tcp is slow: fewer iterations keep the run short.
    const double ucp_s = TimePull(**ucp, {endpoint, descriptors[s], view},
                                  std::max(3, size.iterations / 5));
    const double cma_s = TimePull(**cma, {endpoint, descriptors[s], view}, size.iterations);
    if (ucp_s < 0 || cma_s < 0) return 1;
    std::vector<double> memcpy_s;
    for (int i = 0; i < kWarmup + size.iterations; ++i) {
      auto start = Clock::now();
      std::memcpy(copy_dst, copy_src, size.bytes);
      auto end = Clock::now();
      if (i >= kWarmup) memcpy_s.push_back(std::chrono::duration<double>(end - start).count());
    }
    auto gbps = [&](double seconds) { return size.bytes / seconds / 1e9; };
    if (size.bytes < (1u << 20)) {
      std::printf("%5llu KiB", static_cast<unsigned long long>(size.bytes >> 10));
    } else {
      std::printf("%5llu MiB", static_cast<unsigned long long>(size.bytes >> 20));
    }
    std::printf(" %10.2f %10.2f %12.2f\n", gbps(ucp_s), gbps(cma_s), gbps(Median(memcpy_s)));
  }
  std::printf("(GB/s, GB = 1e9 bytes; warm, reused buffers; median of");
  for (const Size& size : kSizes) std::printf(" %d", size.iterations);
  std::printf(" iterations, a fifth of that for ucp get)\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--producer") return RunProducer();
  // A fresh image for the producer: no UCX state crosses the fork.
  auto producer = ChildProcess::ExecSelf({"--producer"});
  const int rc = RunConsumer(*producer);
  producer->channel().Send({"q"});
  auto code = producer->Join(Deadline::After(std::chrono::seconds(60)));
  return rc != 0 ? rc : (code.ok() ? *code : 1);
}
