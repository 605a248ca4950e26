// ChannelCache: at most one live Channel per peer address, connected on first
// use and shared by every caller in the process.
//
// Get() returns the cached channel if it is still open, else connects (with
// the cache's Hello and Dispatcher) and caches the result. Concurrent Get()s
// for one address share a single connect attempt and its outcome. Closed
// channels are dropped when next looked up. Add() registers a channel made
// elsewhere (e.g. one a Server accepted, under the peer's listen address).
//
// Lifecycle: construct with a started IoLoop; CloseAll() closes and forgets
// every channel (the cache stays usable). The destructor does not close
// channels (others may hold them); call CloseAll() at shutdown.
//
// THREAD CONTRACT: thread-safe. Get() blocks while it connects, so a Get()
// that must connect may not run on the io thread (FERRY_CHECK); a cache hit
// is fine anywhere. No callback runs under the cache's lock.
//
//   ChannelCache cache(loop, my_hello, dispatcher);
//   FERRY_ASSIGN_OR_RETURN(std::shared_ptr<Channel> owner,
//                          cache.Get(ref.owner_address(), Deadline::After(10s)));
//   owner->Call(proto::GET_OBJECT, request, on_reply);
//   cache.CloseAll();
#pragma once

#include <condition_variable>
#include <memory>
#include <string>
#include <unordered_map>

#include "ferry/common/clock.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/channel.h"
#include "ferry/status.h"

namespace ferry::rpc {

class Dispatcher;
class IoLoop;

class ChannelCache {
 public:
  // `hello` is sent on every connect; `dispatcher` serves requests that the
  // connected peers send back.
  ChannelCache(IoLoop& loop, proto::Hello hello, std::shared_ptr<Dispatcher> dispatcher,
               ChannelOptions options = {});
  ChannelCache(const ChannelCache&) = delete;
  ChannelCache& operator=(const ChannelCache&) = delete;

  StatusOr<std::shared_ptr<Channel>> Get(const std::string& address, Deadline deadline)
      FERRY_EXCLUDES(mu_);
  // The cached open channel for `address`, or null. Never blocks or
  // connects: usable on the io thread.
  std::shared_ptr<Channel> Peek(const std::string& address) FERRY_EXCLUDES(mu_);
  // Caches `channel` for `address`, replacing (not closing) an earlier one.
  void Add(const std::string& address, std::shared_ptr<Channel> channel) FERRY_EXCLUDES(mu_);
  // Closes and forgets every cached channel; connects in progress finish but
  // are closed and not cached.
  void CloseAll() FERRY_EXCLUDES(mu_);
  // Number of cached entries (open or not yet dropped).
  size_t size() const FERRY_EXCLUDES(mu_);

 private:
  // One connect attempt, shared by the callers that wait for it.
  struct Attempt {
    bool done = false;
    Status status;
    std::shared_ptr<Channel> channel;
  };
  struct Entry {
    std::shared_ptr<Channel> channel;
    std::shared_ptr<Attempt> attempt;  // set while connecting
  };

  // Const after construction.
  IoLoop& loop_;
  const proto::Hello hello_;
  const std::shared_ptr<Dispatcher> dispatcher_;
  const ChannelOptions options_;

  mutable Mutex mu_;
  std::condition_variable cv_;  // an Attempt finished
  std::unordered_map<std::string, Entry> entries_ FERRY_GUARDED_BY(mu_);
  uint64_t generation_ FERRY_GUARDED_BY(mu_) = 0;  // bumped by CloseAll
};

}  // namespace ferry::rpc
