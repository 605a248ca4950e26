// Small helpers shared by the direct-tensor-transport files of core/rdt/:
// buffer views of tensors, byte counts and transfer records. Internal to
// the core layer.
//
// THREAD CONTRACT: free functions; thread-safe for distinct arguments
// (LogTransfer: TransferLog is thread-safe).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/core/transfer_log.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/status.h"
#include "ferry/tensor/tensor.h"
#include "ferry/transport/two_sided_transport.h"

namespace ferry::core::rdt {

inline std::vector<transport::BufferView> Views(const std::vector<tensor::Tensor>& tensors) {
  std::vector<transport::BufferView> views;
  views.reserve(tensors.size());
  for (const auto& t : tensors) views.push_back({t.data(), t.nbytes()});
  return views;
}

inline int64_t MicrosSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
}

inline uint64_t TotalBytes(const proto::RdtInfo& rdt) {
  uint64_t total = 0;
  for (const auto& meta : rdt.tensors()) total += meta.nbytes();
  return total;
}

inline void LogTransfer(TransferLog& log, const ObjectId& id, std::string transport,
                        std::string peer, uint64_t bytes, Clock::time_point start, bool pooled,
                        const Status& status, std::string direction = "recv",
                        std::string reason = "", int64_t setup_micros = 0) {
  TransferRecord r;
  r.object_id = id;
  r.transport = std::move(transport);
  r.direction = std::move(direction);
  r.peer = std::move(peer);
  r.bytes = bytes;
  r.micros = MicrosSince(start);
  r.setup_micros = setup_micros;
  r.pooled = pooled;
  r.reason = std::move(reason);
  if (!status.ok()) r.error = status.ToString();
  log.Add(std::move(r));
}

// A failure inside a group's transfer is a system error (TransportError at
// the language edge); a missing or destroyed group keeps its own message.
inline Status AsTransportError(const Status& s, const std::string& group) {
  if (s.code() == StatusCode::kFailedPrecondition) return s;
  return Status::Aborted("tensor transfer in collective group '" + group +
                         "' failed: " + s.ToString());
}

}  // namespace ferry::core::rdt
