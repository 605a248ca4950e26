// StreamCopy: memcpy with non-temporal stores, for large copies whose
// destination will be read by someone else (another process, or much later)
// rather than by this core now.
//
// On x86-64 with AVX2 it copies with unaligned 32-byte loads and streaming
// stores (the destination aligned to 32 bytes first), whose speed does not
// depend on the source's and destination's relative alignment and which
// keep the copy from evicting this core's cache; the stores are fenced
// before it returns. Elsewhere it is memcpy. Callers decide from which size
// streaming pays (object::CopyBytes, the shm transport's pull).
//
// THREAD CONTRACT: a free function; thread-safe for disjoint destinations.
//
//   if (n >= kStreamFrom) StreamCopy(dst, src, n); else std::memcpy(dst, src, n);
#pragma once

#include <cstddef>

namespace ferry {

// Copies like memcpy (regions must not overlap); any n, 0 included.
void StreamCopy(void* dst, const void* src, size_t n);

}  // namespace ferry
