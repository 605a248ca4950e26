// TransferLog: the recent tensor transfers of this process, so a user can see
// which path a transfer took and why it was slow
// (ferry.experimental.transfer_log()).
//
// Every transfer that ends in this process leaves one record: a pull by a
// one-sided transport, a two-sided receive or send, an inline fetch, a fetch
// through the object store. The log is a ring: past `capacity` records the
// oldest is dropped.
//
// THREAD CONTRACT: thread-safe; Add and Recent may be called from any thread.
//
//   TransferLog log(1024);
//   TransferRecord r{.object_id = id, .transport = "shm", .peer = address,
//                    .bytes = n, .micros = 812, .pooled = true};
//   log.Add(std::move(r));
//   for (const TransferRecord& r : log.Recent()) { ... }
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"

namespace ferry::core {

struct TransferRecord {
  ObjectId object_id;
  // The path the bytes took: "shm", "nixl", "gloo", "inline" (over the
  // control channel), "object_store".
  std::string transport;
  // "recv" (the bytes arrived here) or "send" (this process served them).
  std::string direction = "recv";
  // The other process's ferry address.
  std::string peer;
  uint64_t bytes = 0;
  int64_t micros = 0;  // from the start of the transfer to its end
  // Before `micros`: allocating the destination buffers (a receive only).
  int64_t setup_micros = 0;
  // When it ended (wall clock); Add sets it when left unset.
  std::chrono::system_clock::time_point end_time{};
  // The destination came from the warm receive pool (false: fresh memory,
  // which costs a page fault per 4 KiB the first time it is written).
  bool pooled = false;
  // Empty when the transfer succeeded, else why it failed.
  std::string error;
  // Why this path was chosen, where there was a choice ("auto": the
  // producer on this host or another one).
  std::string reason;
};

class TransferLog {
 public:
  explicit TransferLog(size_t capacity) : capacity_(capacity) {}
  TransferLog(const TransferLog&) = delete;
  TransferLog& operator=(const TransferLog&) = delete;

  void Add(TransferRecord record) FERRY_EXCLUDES(mu_);
  // Oldest first.
  std::vector<TransferRecord> Recent() const FERRY_EXCLUDES(mu_);
  // Records ever added (including dropped ones).
  uint64_t total() const FERRY_EXCLUDES(mu_);
  // Every transfer ever added, summed per path and direction (Prometheus
  // counters).
  struct Totals {
    std::string transport;
    std::string direction;
    uint64_t count = 0;
    uint64_t bytes = 0;
    uint64_t failures = 0;
  };
  std::vector<Totals> Sums() const FERRY_EXCLUDES(mu_);

 private:
  const size_t capacity_;
  mutable Mutex mu_;
  std::deque<TransferRecord> records_ FERRY_GUARDED_BY(mu_);
  uint64_t total_ FERRY_GUARDED_BY(mu_) = 0;
  std::map<std::pair<std::string, std::string>, Totals> sums_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::core
