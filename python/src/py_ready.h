// ReadyNotifier: tells Python when ObjectRefs become ready, without a Python
// thread blocked per ref (ObjectRef.future(), `await ref`).
//
// Watch() asks the CoreWorker to resolve a ref (CoreWorker::Resolve: from
// this process's store, or from its owner) and, when it is, queues the
// caller's token. One Python thread drains the tokens with Next(), which
// waits with the GIL released. The io thread only queues: it never takes
// the GIL.
//
// Thread contract: thread-safe. Close() wakes Next() for good; a ref that
// resolves after Close() is dropped.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "ferry/common/thread_annotations.h"
#include "ferry/core/core_worker.h"

namespace ferry::python {

class ReadyNotifier : public std::enable_shared_from_this<ReadyNotifier> {
 public:
  void Watch(core::CoreWorker& core, const core::ObjectRef& ref, uint64_t token);
  // The tokens of the refs resolved since the last call, once there is one;
  // nullopt after Close().
  std::optional<std::vector<uint64_t>> Next() FERRY_EXCLUDES(mu_);
  void Close() FERRY_EXCLUDES(mu_);

 private:
  void Push(uint64_t token) FERRY_EXCLUDES(mu_);

  Mutex mu_;
  std::condition_variable cv_;
  std::vector<uint64_t> ready_ FERRY_GUARDED_BY(mu_);
  bool closed_ FERRY_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::python
