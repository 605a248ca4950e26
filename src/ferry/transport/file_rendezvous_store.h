// FileRendezvousStore: a RendezvousStore kept as one file per key in a
// directory, so that processes on one host (tests, benchmarks, a local group)
// can meet without a server.
//
// Lifecycle: the directory must exist and be shared by every member; the
// caller removes it when the group is formed. Keys may be any bytes (they are
// hex-encoded into file names).
//
// THREAD CONTRACT: thread-safe and multi-process safe: Set writes a temporary
// file and renames it into place, so a reader sees a whole value or none.
// Get polls the directory (every 1 ms) until the key appears or its deadline
// passes.
//
//   FileRendezvousStore store("/tmp/ferry-group-42");
//   FERRY_RETURN_IF_ERROR(store.Set("rank0", "addr"));
//   // in another process, same directory:
//   auto v = FileRendezvousStore("/tmp/ferry-group-42")
//                .Get("rank0", Deadline::After(std::chrono::seconds(5)));
#pragma once

#include <string>

#include "ferry/transport/rendezvous_store.h"

namespace ferry::transport {

class FileRendezvousStore : public RendezvousStore {
 public:
  explicit FileRendezvousStore(std::string directory);

  Status Set(const std::string& key, const std::string& value) override;
  StatusOr<std::string> Get(const std::string& key, Deadline deadline) override;

 private:
  std::string PathFor(const std::string& key) const;

  const std::string directory_;
};

}  // namespace ferry::transport
