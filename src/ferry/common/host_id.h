// HostId: names the machine this process runs on, so that two processes can
// tell whether they share memory and /proc (the same-host data paths: shm
// segments, process_vm_readv, UCX's CMA).
//
// It is the kernel's boot id, or — in a cluster — "node-<id>" from
// FERRY_NODE_ID, which every process of one node carries: two nodes are two
// hosts by definition, even when (as ferry's network-namespace test hosts)
// they share a kernel. A process joins a node by setting FERRY_NODE_ID
// before it starts any transport.
//
// Thread contract: thread-safe; the boot id is read once.
//
//   if (peer_host == HostId()) { /* read the peer's memory directly */ }
#pragma once

#include <string>

namespace ferry {

// At most 64 bytes; never empty (a process that cannot read its boot id is
// a host of its own: "pid-<pid>").
std::string HostId();

}  // namespace ferry
