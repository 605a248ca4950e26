#include "ferry/cluster/process_runtime.h"

#include <sys/random.h>

#include "ferry/cluster/process_spawner.h"
#include "ferry/common/config.h"

namespace ferry::cluster {
namespace {

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  FillRandom(reinterpret_cast<uint8_t*>(raw.data()), bytes);
  return HexEncode(reinterpret_cast<const uint8_t*>(raw.data()), bytes);
}

// The cluster token is a secret: from the kernel's CSPRNG, not the id
// generator (ids are visible to everyone on the host).
std::string SecretHex(size_t bytes) {
  std::string raw(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = getrandom(raw.data() + got, bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  return HexEncode(reinterpret_cast<const uint8_t*>(raw.data()), bytes);
}

}  // namespace

void DriverRuntime::Shutdown() {
  if (head) head->Shutdown();
  if (core) core->Shutdown();
  head.reset();  // before core: the Head's watches live on core's io loop
  core.reset();
}

StatusOr<DriverRuntime> StartDriverRuntime() {
  core::CoreWorkerOptions options;
  options.is_driver = true;
  options.token = SecretHex(16);
  options.session = RandomHex(6);
  DriverRuntime rt;
  rt.core = std::make_shared<core::CoreWorker>(options);
  rt.head = std::make_unique<Head>(rt.core->io_loop(), rt.core->dispatcher(),
                                   HeadOptions{options.token, options.session});
  Status s = rt.core->Start();
  if (!s.ok()) {
    rt.Shutdown();
    return s.WithContext("starting ferry");
  }
  rt.head->SetAddress(rt.core->address());
  return rt;
}

bool IsSpawnedWorker() { return !EnvString("FERRY_HEAD_ADDRESS", "").empty(); }

StatusOr<std::shared_ptr<core::CoreWorker>> StartWorkerRuntime() {
  if (!IsSpawnedWorker()) {
    return Status::FailedPrecondition("not started by ferry: FERRY_HEAD_ADDRESS is not set");
  }
  InstallWorkerGuards();
  core::CoreWorkerOptions options;
  options.is_driver = false;
  options.token = EnvString("FERRY_TOKEN", "");
  options.session = EnvString("FERRY_SESSION", "");
  options.head_address = EnvString("FERRY_HEAD_ADDRESS", "");
  FERRY_ASSIGN_OR_RETURN(options.worker_id, WorkerId::FromHex(EnvString("FERRY_WORKER_ID", "")));
  FERRY_ASSIGN_OR_RETURN(options.actor_id, ActorId::FromHex(EnvString("FERRY_ACTOR_ID", "")));
  auto core = std::make_shared<core::CoreWorker>(options);
  FERRY_RETURN_IF_ERROR(core->Start());
  return core;
}

}  // namespace ferry::cluster
