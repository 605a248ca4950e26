// The UCX backend's wire formats (internal to this folder): the endpoint a
// producer publishes once (its pid, start time and host key, then the UCP
// address of its lane-0 worker) and the descriptor of each exported buffer
// (remote address, length, packed rkey), plus the process identity the
// endpoint carries. Both ends run the same build on the same architecture
// (the endpoint carries a UCX worker address, which has the same
// requirement), so the fixed-size headers are copied in native byte order;
// magic numbers catch strings made by another backend or truncated on the
// way. README.md "What goes over the wire" describes both.
//
// THREAD CONTRACT: pure functions of their arguments (and of /proc for the
// identity functions); safe from any thread. A parsed Endpoint or Descriptor
// views into the string it was parsed from, which must outlive it.
//
//   std::string e = EncodeEndpoint(pid, ProcessStartTime(pid), HostKey(), addr, len);
//   FERRY_ASSIGN_OR_RETURN(Endpoint endpoint, ParseEndpoint(e));
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry::transport::ucx {

// Length of a host key: boot id + pid namespace, zero padded.
constexpr size_t kHostKeyLen = 48;

// A parsed descriptor; `rkey` views the packed rkey inside it (empty for a
// zero-byte buffer).
struct Descriptor {
  uint64_t address = 0;
  uint64_t length = 0;
  std::string_view rkey;
};

// A parsed endpoint; the views point into the endpoint string.
struct Endpoint {
  uint64_t pid = 0;
  uint64_t start_time = 0;
  std::string_view host_key;
  std::string_view address;  // the UCP worker address
};

// `host_key` is truncated or zero padded to kHostKeyLen.
std::string EncodeEndpoint(uint64_t pid, uint64_t start_time, const std::string& host_key,
                           const void* address, size_t len);
// InvalidArgument if `endpoint` was not made by EncodeEndpoint.
StatusOr<Endpoint> ParseEndpoint(std::string_view endpoint);

std::string EncodeDescriptor(uint64_t address, uint64_t length, const void* rkey, size_t rkey_len);
// InvalidArgument if `descriptor` was not made by EncodeDescriptor, or
// describes a non-empty buffer without an rkey.
StatusOr<Descriptor> ParseDescriptor(std::string_view descriptor);

// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks
// since boot. 0 if unreadable.
uint64_t ProcessStartTime(uint64_t pid);

// Names this kernel boot and pid namespace: two processes with the same key
// can name each other by pid. kHostKeyLen bytes, or empty if it cannot be
// read.
std::string HostKey();

}  // namespace ferry::transport::ucx
