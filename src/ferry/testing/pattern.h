// Payload patterns for tests and benchmarks: bytes that depend on their
// position and a seed, so a copy that moved the wrong range, stopped short,
// or came from another buffer is caught. Word-wise, so writing and checking
// 256 MiB stays cheap. The pattern of a prefix is the prefix of the pattern:
// the first k bytes of FillPattern(p, n, seed) are those of
// FillPattern(p, k, seed), so one filled buffer serves pulls of every size
// up to its length.
//
// THREAD CONTRACT: pure functions of their arguments; thread-safe.
//
//   FillPattern(src, n, /*seed=*/7);                // producer
//   ...                                             // bytes travel to dst
//   EXPECT_EQ(FirstMismatch(dst, n, 7), -1);        // consumer
//   EXPECT_EQ(received, Pattern(n, 7));             // the same, as a vector
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ferry::testing {

// Writes `n` bytes of the pattern for `seed` at `data` (null when n is 0 is
// fine).
void FillPattern(void* data, uint64_t n, uint64_t seed);

// The index of the first of the `n` bytes at `data` that differs from the
// pattern for `seed`, or -1 if none does.
int64_t FirstMismatch(const void* data, uint64_t n, uint64_t seed);

// `n` bytes of the pattern for `seed`.
std::vector<uint8_t> Pattern(size_t n, uint64_t seed);

}  // namespace ferry::testing
