// InMemoryRendezvousStore: a RendezvousStore held in this process's memory,
// for transport groups whose ranks are threads of one process (tests).
//
// Lifecycle: plain value; destroy it only after every Get has returned.
//
// THREAD CONTRACT: thread-safe. Get waits on a condition variable (no
// polling) until the key is Set or the deadline passes.
//
//   InMemoryRendezvousStore store;
//   std::thread t([&] { (void)store.Set("k", "v"); });
//   auto v = store.Get("k", Deadline::After(std::chrono::seconds(1)));
//   t.join();
//   // v.ok() && *v == "v"
#pragma once

#include <condition_variable>
#include <map>
#include <string>

#include "ferry/common/thread_annotations.h"
#include "ferry/transport/rendezvous_store.h"

namespace ferry::transport {

class InMemoryRendezvousStore : public RendezvousStore {
 public:
  Status Set(const std::string& key, const std::string& value) override;
  StatusOr<std::string> Get(const std::string& key, Deadline deadline) override;

 private:
  Mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> values_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::transport
