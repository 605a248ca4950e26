// KvStore: the Head's small key-value table (collective-group rendezvous,
// named actors), with waiters for keys that do not exist yet.
//
// Thread contract: thread-safe. Callbacks run outside the lock, on the thread
// that made the key appear (Put) or that asked (Get of a present key).
//
//   KvStore kv;
//   kv.Put("group/a/rank0", "addr", /*overwrite=*/true);
//   kv.GetOrWait("group/a/rank1", [](std::optional<std::string> v) { ... });
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ferry/common/thread_annotations.h"

namespace ferry::cluster {

class KvStore {
 public:
  using Callback = std::function<void(std::optional<std::string>)>;

  // Returns false if the key exists and `overwrite` is false.
  bool Put(const std::string& key, std::string value, bool overwrite);
  std::optional<std::string> Get(const std::string& key);
  // Calls `cb` with the value now, or when it is Put. The caller bounds the
  // wait by calling CancelWaiters for the token it gets back.
  uint64_t GetOrWait(const std::string& key, Callback cb);
  // Fires the waiter `token` (if still waiting) with nullopt.
  void Cancel(uint64_t token);
  // Deletes `key`, or every key starting with it when `prefix`.
  size_t Delete(const std::string& key, bool prefix);

 private:
  struct Waiter {
    std::string key;
    Callback cb;
  };
  Mutex mu_;
  std::map<std::string, std::string> data_ FERRY_GUARDED_BY(mu_);
  std::map<uint64_t, Waiter> waiters_ FERRY_GUARDED_BY(mu_);
  uint64_t next_token_ FERRY_GUARDED_BY(mu_) = 1;
};

}  // namespace ferry::cluster
