#include "ferry/common/config.h"

#include <cstdlib>
#include <memory>
#include <mutex>

namespace ferry {
namespace {

Config Load() {
  Config c;
  using std::chrono::milliseconds;
  c.inline_bytes = EnvInt("FERRY_INLINE_BYTES", c.inline_bytes);
  c.worker_start_timeout = milliseconds(EnvInt("FERRY_WORKER_START_TIMEOUT_S", 60) * 1000);
  c.rpc_connect_timeout = milliseconds(EnvInt("FERRY_RPC_CONNECT_TIMEOUT_S", 10) * 1000);
  c.kill_grace = milliseconds(EnvInt("FERRY_KILL_GRACE_S", 2) * 1000);
  c.shm_pool_bytes = EnvInt("FERRY_SHM_POOL_BYTES", c.shm_pool_bytes);
  c.transfer_timeout = milliseconds(EnvInt("FERRY_TRANSFER_TIMEOUT_S", 60) * 1000);
  c.inline_tensor_bytes = EnvInt("FERRY_INLINE_TENSOR_BYTES", c.inline_tensor_bytes);
  c.transfer_log_size = EnvInt("FERRY_TRANSFER_LOG_SIZE", c.transfer_log_size);
  c.timeline_size = EnvInt("FERRY_TIMELINE_SIZE", c.timeline_size);
  c.heartbeat_interval = milliseconds(EnvInt("FERRY_HEARTBEAT_INTERVAL_MS", 500));
  c.node_timeout = milliseconds(EnvInt("FERRY_NODE_TIMEOUT_S", 5) * 1000);
  c.pending_warning = milliseconds(EnvInt("FERRY_PENDING_WARNING_S", 5) * 1000);
  c.log_to_driver = EnvInt("FERRY_LOG_TO_DRIVER", 1) != 0;
  c.temp_dir = EnvString("FERRY_TEMP_DIR", "/tmp/ferry");
  return c;
}

Config& Instance() {
  static Config config = Load();
  return config;
}

}  // namespace

const Config& Config::Get() { return Instance(); }
void Config::ReloadForTest() { Instance() = Load(); }

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long long n = std::strtoll(v, &end, 10);
  return (end != nullptr && *end == '\0') ? n : fallback;
}

std::string EnvString(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v == nullptr || *v == '\0') ? fallback : std::string(v);
}

}  // namespace ferry
