#include "ferry/cluster/kv_store.h"

namespace ferry::cluster {

bool KvStore::Put(const std::string& key, std::string value, bool overwrite) {
  std::vector<Callback> fire;
  {
    MutexLock lock(mu_);
    auto it = data_.find(key);
    if (it != data_.end() && !overwrite) return false;
    data_[key] = value;
    for (auto w = waiters_.begin(); w != waiters_.end();) {
      if (w->second.key == key) {
        fire.push_back(std::move(w->second.cb));
        w = waiters_.erase(w);
      } else {
        ++w;
      }
    }
  }
  for (auto& cb : fire) cb(value);
  return true;
}

std::optional<std::string> KvStore::Get(const std::string& key) {
  MutexLock lock(mu_);
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second;
}

uint64_t KvStore::GetOrWait(const std::string& key, Callback cb) {
  std::optional<std::string> now;
  uint64_t token = 0;
  {
    MutexLock lock(mu_);
    auto it = data_.find(key);
    if (it != data_.end()) {
      now = it->second;
    } else {
      token = next_token_++;
      waiters_[token] = Waiter{key, std::move(cb)};
    }
  }
  if (now) cb(std::move(now));
  return token;
}

void KvStore::Cancel(uint64_t token) {
  Callback cb;
  {
    MutexLock lock(mu_);
    auto it = waiters_.find(token);
    if (it == waiters_.end()) return;
    cb = std::move(it->second.cb);
    waiters_.erase(it);
  }
  cb(std::nullopt);
}

size_t KvStore::Delete(const std::string& key, bool prefix) {
  MutexLock lock(mu_);
  if (!prefix) return data_.erase(key);
  size_t n = 0;
  for (auto it = data_.lower_bound(key); it != data_.end() && it->first.rfind(key, 0) == 0;) {
    it = data_.erase(it);
    ++n;
  }
  return n;
}

}  // namespace ferry::cluster
