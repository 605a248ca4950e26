// The C++ API's process-wide runtime: one CoreWorker (plus the embedded Head
// in a driver), started by ferry::Init and stopped by ferry::Shutdown.
//
// Thread contract: CurrentCore() is thread-safe; Init/Shutdown must not race
// with other API calls (documented in ferry.h).
#pragma once

#include <memory>

#include "ferry/core/core_worker.h"
#include "ferry/object_ref.h"

namespace ferry {
namespace internal {

// A live ObjectRef: counted once in its owner (this process's CoreWorker)
// while the RefState lives. The runtime is held weakly: a ref that outlives
// ferry::Shutdown is inert.
class RefState {
 public:
  RefState(core::ObjectRef ref, std::weak_ptr<core::CoreWorker> core)
      : ref_(std::move(ref)), core_(std::move(core)) {}
  ~RefState() {
    if (auto c = core_.lock()) c->RemoveLocalRef(ref_);
  }
  RefState(const RefState&) = delete;
  RefState& operator=(const RefState&) = delete;

  const core::ObjectRef& ref() const { return ref_; }

 private:
  const core::ObjectRef ref_;
  const std::weak_ptr<core::CoreWorker> core_;
};

}  // namespace internal

namespace api {

// The value format of C++ values: a cereal binary archive plus one buffer
// (or RDT tensor) per ferry::Tensor it refers to.
inline constexpr char kFormat[] = "cpp-cereal";

// The running CoreWorker; throws InvalidArgumentError before ferry::Init.
std::shared_ptr<core::CoreWorker> CurrentCore();

}  // namespace api
}  // namespace ferry
