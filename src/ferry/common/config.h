// Run-time settings, each with a documented default and an environment
// override FERRY_<NAME>. Read once per process (thread-safe static init);
// tests may call Config::ReloadForTest() after setenv.
//
//   auto t = Config::Get().worker_start_timeout;
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ferry {

struct Config {
  // FERRY_INLINE_BYTES: values up to this size travel inside control
  // messages; larger ones go into a shared-memory segment. Default 100 KiB.
  int64_t inline_bytes = 100 * 1024;
  // FERRY_WORKER_START_TIMEOUT_S: a spawned worker must register and build its
  // actor within this time, or the actor is marked dead. Default 60 s.
  std::chrono::milliseconds worker_start_timeout{60'000};
  // FERRY_RPC_CONNECT_TIMEOUT_S: connecting to a peer and the handshake.
  // Default 10 s.
  std::chrono::milliseconds rpc_connect_timeout{10'000};
  // FERRY_KILL_GRACE_S: after asking a worker to exit, wait this long before
  // SIGKILL. Default 2 s.
  std::chrono::milliseconds kill_grace{2'000};
  // FERRY_SHM_POOL_BYTES: freed shared-memory segments kept warm for reuse
  // per process. Default 4 GiB.
  int64_t shm_pool_bytes = int64_t{4} << 30;
  // FERRY_TRANSFER_TIMEOUT_S: bound on one tensor transfer. Default 60 s.
  std::chrono::milliseconds transfer_timeout{60'000};
  // FERRY_INLINE_TENSOR_BYTES: RDT objects up to this size move over the
  // control channel (one round trip) rather than a collective group, whose
  // handshakes cost more than the bytes. Default 64 KiB.
  int64_t inline_tensor_bytes = 64 * 1024;
  // FERRY_TRANSFER_LOG_SIZE: how many recent transfer records each process
  // keeps for ferry.experimental.transfer_log(). Default 1024.
  int64_t transfer_log_size = 1024;
  // FERRY_TIMELINE_SIZE: how many recent task spans and call spans each
  // process keeps for `ferry timeline` (of each kind); 0 records none.
  int64_t timeline_size = 10000;
  // FERRY_HEARTBEAT_INTERVAL_MS: how often a node agent tells the head it is
  // alive. Default 500 ms.
  std::chrono::milliseconds heartbeat_interval{500};
  // FERRY_NODE_TIMEOUT_S: a node the head has not heard from for this long
  // is dead, and so is everything that ran there. Default 5 s.
  std::chrono::milliseconds node_timeout{5'000};
  // FERRY_PENDING_WARNING_S: an actor still waiting for resources after this
  // long gets a warning in the head's log and in its driver's. Default 5 s.
  std::chrono::milliseconds pending_warning{5'000};
  // FERRY_LOG_TO_DRIVER: 1 prints what the workers print in the driver's
  // terminal (prefixed with the worker's name and pid); 0 keeps it only in
  // the workers' log files. Default 1 (Ray's log_to_driver).
  bool log_to_driver = true;
  // FERRY_TEMP_DIR: where an embedded session keeps its files
  // (session-<name>/logs/worker-*.out|err). Default /tmp/ferry.
  std::string temp_dir = "/tmp/ferry";

  static const Config& Get();
  static void ReloadForTest();
};

// Reads an integer environment variable, or returns `fallback`.
int64_t EnvInt(const char* name, int64_t fallback);
// Reads a string environment variable, or returns `fallback`.
std::string EnvString(const char* name, const std::string& fallback);

}  // namespace ferry
