#include "ferry/transport/shm/torch_shm_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"
#include "ferry/transport/shm/shm_arena.h"

namespace ferry::transport {
namespace {

// The allocator that was installed before ours, and its raw deleter; written
// once, before ours becomes visible to c10.
c10::Allocator* g_previous = nullptr;
c10::DeleterFnPtr g_previous_raw_deleter = nullptr;

// The deleter of every arena allocation, and our raw_deleter(): c10 calls it
// with the block's base for tensors we made, and raw_deallocate may pass any
// pointer raw_allocate returned, including the previous allocator's.
void DeleteAny(void* ptr) {
  if (ptr == nullptr) return;
  ShmArena& arena = ShmArena::Global();
  std::optional<ShmArena::Block> block = arena.Find(ptr);
  if (block.has_value() && block->base == ptr) {
    arena.Free(ptr);
    return;
  }
  FERRY_CHECK(g_previous_raw_deleter != nullptr)
      << "torch shm allocator: " << ptr
      << " is not an arena block and the previous allocator has no raw deleter";
  g_previous_raw_deleter(ptr);
}

class TorchShmAllocator final : public c10::Allocator {
 public:
  explicit TorchShmAllocator(uint64_t min_bytes) : min_bytes_(min_bytes) {}

  c10::DataPtr allocate(size_t n) const override {
    if (n >= min_bytes_) {
      StatusOr<void*> block = ShmArena::Global().Allocate(n);
      if (block.ok()) return {*block, *block, &DeleteAny, c10::Device(c10::DeviceType::CPU)};
      // Ordinary memory still works, only pulls of it are slower.
      if (!warned_.exchange(true)) {
        FERRY_LOG(WARNING) << "torch shm allocator: falling back to the previous CPU allocator: "
                           << block.status();
      }
    }
    // Small tensors keep the previous allocator's own DataPtr and deleter:
    // no lookup on their (frequent) frees.
    return g_previous->allocate(n);
  }

  // Non-null only if the previous allocator has one: DeleteAny forwards the
  // pointers that are not ours to it.
  c10::DeleterFnPtr raw_deleter() const override {
    return g_previous_raw_deleter != nullptr ? &DeleteAny : nullptr;
  }

 private:
  const uint64_t min_bytes_;
  mutable std::atomic<bool> warned_{false};
};

}  // namespace

uint64_t TorchShmMinBytesFromEnv() {
  const int64_t v = EnvInt("FERRY_SHM_ARENA_MIN_BYTES",
                           static_cast<int64_t>(kDefaultTorchShmMinBytes));
  return v < 1 ? 1 : static_cast<uint64_t>(v);
}

bool InstallTorchShmAllocator() {
  // The static's initialization runs once even when called concurrently.
  static c10::Allocator* const ours = []() -> c10::Allocator* {
    g_previous = c10::GetCPUAllocator();
    g_previous_raw_deleter = g_previous->raw_deleter();
    auto* alloc = new TorchShmAllocator(TorchShmMinBytesFromEnv());  // never destroyed
    c10::SetCPUAllocator(alloc, kTorchShmAllocatorPriority);
    return alloc;
  }();
  return c10::GetCPUAllocator() == ours;
}

}  // namespace ferry::transport
