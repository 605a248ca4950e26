// The hook that puts torch's large CPU tensors into the shm arena, so the
// "shm" transport can pull them with one memcpy from a shared mapping instead
// of the slower process_vm_readv path.
//
// InstallTorchShmAllocator() makes a c10::Allocator the process's CPU
// allocator (c10::SetCPUAllocator): requests of at least
// FERRY_SHM_ARENA_MIN_BYTES come from ShmArena::Global(), smaller ones (and
// large ones the arena refuses) from the allocator that was installed before.
// Tensors allocated before the install keep their own deleters (a
// c10::DataPtr carries its deleter), so installing late is safe; they just
// take the VM path when pulled.
//
// Lifecycle: installed once per process and never uninstalled; the allocator
// object is never destroyed (tensors may be freed while the process exits).
//
// THREAD CONTRACT: InstallTorchShmAllocator is thread-safe and idempotent;
// the allocator itself is thread-safe, as c10 requires.
//
//   if (!InstallTorchShmAllocator()) FERRY_LOG(WARNING) << "large tensors take the VM path";
//   at::Tensor t = at::empty({64 << 20}, at::kByte);   // lives in the arena
//   transport->Export({{t.data_ptr(), t.nbytes()}});   // ARENA descriptor
#pragma once

#include <cstdint>

namespace ferry::transport {

// FERRY_SHM_ARENA_MIN_BYTES: CPU allocations of at least this many bytes go
// to the shm arena once the allocator is installed. Default 1 MiB.
inline constexpr uint64_t kDefaultTorchShmMinBytes = uint64_t{1} << 20;
uint64_t TorchShmMinBytesFromEnv();

// Installs the allocator on the first call (later calls only report). True
// if it is c10's CPU allocator now; false if an allocator of higher priority
// than ours (kTorchShmAllocatorPriority) was installed first.
bool InstallTorchShmAllocator();

// The c10 priority we install with: above c10's default (0), below 255 so a
// deliberate override by the application still wins.
inline constexpr uint8_t kTorchShmAllocatorPriority = 100;

}  // namespace ferry::transport
