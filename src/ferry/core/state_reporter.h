// StateReporter: answers GET_STATE with what this process holds right now —
// the objects it owns and why each is alive (local refs, task arguments in
// flight, borrowers, a pin), the refs it borrows, the tensors it keeps for
// RDT objects, its recent transfers, its collective groups and, when asked,
// its timeline (the tasks it ran and the calls it made). The `ferry`
// command gathers it from every process of a session for `ferry list
// objects|transfers|groups` and `ferry memory` (docs/observability.md).
//
// It keeps no state of its own: each request reads the components it was
// given, each of which is thread-safe.
//
// THREAD CONTRACT: thread-safe. Construct it with the components a
// CoreWorker makes at construction, Register its handler before the
// dispatcher serves, and Attach the ones made by CoreWorker::Start; a
// request before Attach reports what the first ones hold. The handler runs
// on the io thread and does not block (it copies tables under their locks).
//
//   StateReporter state({.worker_id = id, .is_driver = true}, refs, store, segments, tensors,
//                       timeline);
//   state.Register(dispatcher);
//   ... Start ...
//   state.Attach({&tracker, &holder, &owner});
//   proto::ProcessState now = state.Collect({});
#pragma once

#include <string>

#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/core/rdt/tensor_holder.h"
#include "ferry/core/rdt/transfer_owner.h"
#include "ferry/core/ref_tracker.h"
#include "ferry/core/timeline.h"
#include "ferry/object/local_segments.h"
#include "ferry/object/memory_store.h"
#include "ferry/object/reference_counter.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/tensor/tensor_store.h"

namespace ferry::core {

class StateReporter {
 public:
  struct Identity {
    WorkerId worker_id;
    ActorId actor_id;  // nil for a driver
    bool is_driver = false;
  };
  // The components CoreWorker::Start makes.
  struct Started {
    const RefTracker* tracker = nullptr;
    rdt::TensorHolder* holder = nullptr;  // transfer log, groups joined
    rdt::TransferOwner* owner = nullptr;  // groups created
  };
  // The longest list a request gets unless it asks for fewer.
  static constexpr size_t kDefaultMaxObjects = 10000;

  StateReporter(Identity identity, const object::ReferenceCounter& owned,
                const object::MemoryStore& values, const object::LocalSegments& segments,
                const tensor::TensorStore& tensors, const Timeline& timeline)
      : identity_(std::move(identity)),
        owned_(owned),
        values_(values),
        segments_(segments),
        tensors_(tensors),
        timeline_(timeline) {}
  StateReporter(const StateReporter&) = delete;
  StateReporter& operator=(const StateReporter&) = delete;

  void Register(rpc::Dispatcher& dispatcher);
  void Attach(Started started) FERRY_EXCLUDES(mu_);

  proto::ProcessState Collect(const proto::StateRequest& request) const FERRY_EXCLUDES(mu_);

 private:
  uint64_t AddOwned(size_t max, proto::ProcessState* state) const;
  static void AddTransfers(const TransferLog& log, size_t max, proto::ProcessState* state);
  static void AddGroups(Started started, proto::ProcessState* state);
  void AddTimeline(proto::ProcessState* state) const;

  const Identity identity_;
  const object::ReferenceCounter& owned_;
  const object::MemoryStore& values_;
  const object::LocalSegments& segments_;
  const tensor::TensorStore& tensors_;
  const Timeline& timeline_;

  mutable Mutex mu_;
  Started started_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::core
