// object_bench: the 256 MiB object-store path, beside warm memcpy in the same
// run. Producer: WriteValue into a fresh segment (cold pages) and into a
// pooled one (warm pages). Reader, in a forked child: ShmMapping::Open (with
// MAP_POPULATE), read every byte, copy every byte out into a warm private
// buffer, and write every page of the copy-on-write mapping.
//
//   object_bench [MiB]     (default 256)
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ferry/object/copy_bytes.h"
#include "ferry/object/local_segments.h"
#include "ferry/object/segment_pool.h"
#include "ferry/object/shm_mapping.h"
#include "ferry/object/value_writer.h"
#include "ferry/testing/child_process.h"

namespace ferry::object {
namespace {

using Seconds = std::chrono::duration<double>;
constexpr int kReps = 5;

double Now() { return Seconds(Clock::now().time_since_epoch()).count(); }
double GBps(uint64_t bytes, double s) { return bytes / s / 1e9; }

// Best of kReps.
template <typename F>
double BestSeconds(F&& f) {
  double best = 1e30;
  for (int i = 0; i < kReps; ++i) {
    double t0 = Now();
    f();
    best = std::min(best, Now() - t0);
  }
  return best;
}

uint64_t SumWords(const uint8_t* p, uint64_t n) {
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  uint64_t words = n / 8, i = 0;
  for (; i + 4 <= words; i += 4) {
    s0 += w[i];
    s1 += w[i + 1];
    s2 += w[i + 2];
    s3 += w[i + 3];
  }
  for (; i < words; ++i) s0 += w[i];
  return s0 + s1 + s2 + s3;
}

uint8_t* WarmBuffer(uint64_t n) {
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(4096, n));
  std::memset(p, 1, n);
  return p;
}

int Run(uint64_t bytes) {
  std::printf("object_bench: %.0f MiB value (pickle5-like: 64-byte header + one buffer)\n",
              bytes / 1048576.0);
  uint8_t* src = WarmBuffer(bytes);
  for (uint64_t i = 0; i < bytes; i += 4096) src[i] = static_cast<uint8_t>(i >> 12);
  uint8_t* dst = WarmBuffer(bytes);
  double memcpy_s = BestSeconds([&] { std::memcpy(dst, src, bytes); });
  // What a value layout does to glibc memcpy: a buffer 64 bytes into the
  // segment, copied from a page-aligned array.
  uint8_t* dst_off = WarmBuffer(bytes + 4096);
  double memcpy_off_s = BestSeconds([&] { std::memcpy(dst_off + 64, src, bytes); });
  double copybytes_off_s = BestSeconds([&] { CopyBytes(dst_off + 64, src, bytes); });
  std::free(dst_off);
  const uint64_t expected_sum = SumWords(src, bytes);

  SegmentPool pool(int64_t{8} << 30);
  LocalSegments segments(pool);
  std::string header(64, 'h');
  std::vector<std::span<const uint8_t>> bufs = {std::span<const uint8_t>(src, bytes)};

  // Cold: a fresh segment, every page faulted in by the copy.
  ObjectId cold_id = ObjectId::Random();
  double t0 = Now();
  auto cold = WriteValue(cold_id, "pickle5", header, bufs, segments, pool, 100 << 10);
  double cold_s = Now() - t0;
  if (!cold.ok()) {
    std::fprintf(stderr, "WriteValue: %s\n", cold.status().ToString().c_str());
    return 1;
  }
  segments.Free(cold_id);  // back to the pool, warm

  proto::ObjectValueProto value;
  double warm_s = BestSeconds([&] {
    ObjectId id = ObjectId::Random();
    auto v = WriteValue(id, "pickle5", header, bufs, segments, pool, 100 << 10);
    if (!v.ok()) std::abort();
    value = *v;
    segments.Free(id);
  });
  // Keep the last value published for the reader.
  ObjectId id = ObjectId::Random();
  auto published = WriteValue(id, "pickle5", header, bufs, segments, pool, 100 << 10);
  if (!published.ok()) return 1;
  auto stats = pool.GetStats();
  const proto::ShmLocation loc = published->shm();
  const uint64_t buf_off = published->buffer_offsets(0);

  testing::ChildProcess reader([&](testing::MessageChannel& ch) {
    uint8_t* out = WarmBuffer(bytes);
    double open_s = 1e30, read_s = 1e30, copy_s = 1e30, cow_s = 1e30;
    for (int i = 0; i < kReps; ++i) {
      double a = Now();
      auto m = ShmMapping::Open(loc);
      double b = Now();
      if (!m.ok()) return 11;
      const uint8_t* p = (*m)->data() + buf_off;
      if (SumWords(p, bytes) != expected_sum) return 12;
      double c = Now();
      std::memcpy(out, p, bytes);
      double d = Now();
      for (uint64_t o = 0; o < (*m)->size(); o += 4096) (*m)->data()[o] ^= 1;  // COW each page
      double e = Now();
      open_s = std::min(open_s, b - a);
      read_s = std::min(read_s, c - b);
      copy_s = std::min(copy_s, d - c);
      cow_s = std::min(cow_s, e - d);
    }
    char line[256];
    std::snprintf(line, sizeof(line), "%.6f %.6f %.6f %.6f", open_s, read_s, copy_s, cow_s);
    return ch.Send({line}) ? 0 : 13;
  });
  auto line = reader.channel().ReceiveOne(Deadline::After(std::chrono::minutes(5)));
  auto code = reader.Join(Deadline::After(std::chrono::minutes(1)));
  if (!line.ok() || !code.ok() || *code != 0) {
    std::fprintf(stderr, "reader failed: %s / exit %d\n", line.status().ToString().c_str(),
                 code.ok() ? *code : -1);
    return 1;
  }
  double open_s, read_s, copy_s, cow_s;
  std::sscanf(line->c_str(), "%lf %lf %lf %lf", &open_s, &read_s, &copy_s, &cow_s);

  std::printf("%-58s %9s %9s\n", "step (best of 5; buffers warm unless said)", "ms", "GB/s");
  auto row = [&](const char* what, double s) {
    std::printf("%-58s %9.2f %9.2f\n", what, s * 1e3, GBps(bytes, s));
  };
  row("baseline: memcpy warm -> warm, same process", memcpy_s);
  row("  glibc memcpy, dst 64 B past src mod 4 KiB (layout case)", memcpy_off_s);
  row("  CopyBytes, same misalignment", copybytes_off_s);
  row("WriteValue into a fresh segment (cold pages, 1 run)", cold_s);
  row("WriteValue into a pooled segment (warm pages)", warm_s);
  row("reader: ShmMapping::Open (memfd, MAP_POPULATE)", open_s);
  row("reader: read every byte of the mapping", read_s);
  row("reader: memcpy mapping -> warm private buffer", copy_s);
  row("reader: write one byte per page (COW copies)", cow_s);
  row("put+get one copy: pooled WriteValue + Open", warm_s + open_s);
  std::printf("pool: hits %llu misses %llu pooled %.0f MiB\n",
              static_cast<unsigned long long>(stats.hits),
              static_cast<unsigned long long>(stats.misses), stats.pooled_bytes / 1048576.0);
  std::free(src);
  std::free(dst);
  return 0;
}

}  // namespace
}  // namespace ferry::object

int main(int argc, char** argv) {
  uint64_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 256;
  return ferry::object::Run(mib << 20);
}
