// CopyBytes: memcpy for large values written into shared-memory segments.
//
// Why not plain memcpy: glibc 2.36's memcpy on the AMD EPYC hosts we run on
// drops from ~11 GB/s to ~3.5 GB/s for large copies whose destination sits
// 16..~500 bytes past the source modulo 4 KiB — exactly what a value layout
// produces (a 64-byte-aligned buffer after a short pickle header, copied
// from a page-aligned array). Above 1 MiB on x86-64 with AVX2 this copies
// with unaligned 32-byte loads and non-temporal stores, whose speed does not
// depend on the relative alignment and which keeps a value another process
// will read from evicting this one's cache. Elsewhere it is memcpy.
//
// THREAD CONTRACT: a free function; thread-safe for disjoint destinations.
// The stores are fenced before it returns.
//
//   FERRY_ASSIGN_OR_RETURN(PendingValue pending,
//                          ReserveValue(id, "pickle5", hdr.size(), sizes, segments, pool, limit));
//   CopyBytes(pending.data().data(), hdr.data(), hdr.size());
//   CopyBytes(pending.buffer(0).data(), array.data(), array.size());  // no GIL needed
//   FERRY_ASSIGN_OR_RETURN(proto::ObjectValueProto value, pending.Commit());
#pragma once

#include <cstddef>

namespace ferry::object {

// Copies like memcpy (regions must not overlap).
void CopyBytes(void* dst, const void* src, size_t n);

// Size from which CopyBytes streams (bypasses the cache).
inline constexpr size_t kStreamingCopyThreshold = size_t{1} << 20;

}  // namespace ferry::object
