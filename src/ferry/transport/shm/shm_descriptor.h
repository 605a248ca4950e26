// The shm transport's wire formats, internal to the backend: the descriptor
// Export hands out for each buffer, and the parsing a Pull does of its items
// (endpoint, descriptor, destination) before it copies anything. The endpoint
// format itself is ShmEndpoint's (shm_transport.h), implemented beside these.
//
// Descriptors are binary, fixed size per kind, in native byte order (both
// ends share a host):
//   magic "FSH1" | kind u8 | 3 zero bytes | kind-specific fields.
//   ARENA: fd i32 | inode u64 | offset u64 | length u64   (36 bytes)
//   VM:    address u64 | length u64                        (24 bytes)
//
// THREAD CONTRACT: stateless functions and plain values; thread-safe.
//
//   std::string d = EncodeArenaDescriptor(block.fd, block.inode, offset, n);
//   ...
//   FERRY_ASSIGN_OR_RETURN(std::vector<ParsedItem> parsed, ParsePullItems(items));
//   for (const ParsedItem& p : parsed) Copy(p);
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ferry/status.h"
#include "ferry/transport/one_sided_transport.h"
#include "ferry/transport/shm/shm_transport.h"

namespace ferry::transport::shm_internal {

enum class DescriptorKind : uint8_t { kArena = 1, kVm = 2 };

// The buffer lies in the producer's arena block (memfd number `fd` in the
// producer, with inode `inode`), at `offset`.
std::string EncodeArenaDescriptor(int32_t fd, uint64_t inode, uint64_t offset, uint64_t length);
// Any other memory of the producer, read with process_vm_readv.
std::string EncodeVmDescriptor(uint64_t address, uint64_t length);

// One PullItem, checked: its endpoint names a process on this host, its
// descriptor is well formed, and its destination holds exactly the buffer.
// Borrows the destination like the PullItem it came from.
struct ParsedItem {
  size_t index = 0;  // in the Pull, for messages
  ShmEndpoint endpoint;
  DescriptorKind kind = DescriptorKind::kVm;
  int32_t fd = -1;
  uint64_t inode = 0;
  uint64_t offset = 0;   // ARENA: in the block
  uint64_t address = 0;  // VM: in the producer
  uint64_t length = 0;
  void* dst = nullptr;

  // "shm transport: item <index> from producer process <pid>", the prefix of
  // every message about this item.
  std::string Where() const;
};

// Parses every item before any is copied; the first bad one fails the lot
// (InvalidArgument, or FailedPrecondition for an endpoint of another host).
StatusOr<std::vector<ParsedItem>> ParsePullItems(std::span<const PullItem> items);

}  // namespace ferry::transport::shm_internal
