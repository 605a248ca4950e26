#include "ferry/common/host_id.h"

#include <unistd.h>

#include <fstream>

#include "ferry/common/config.h"

namespace ferry {

std::string HostId() {
  static const std::string* boot_id = [] {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string id;
    if (!(in >> id) || id.empty()) id = "pid-" + std::to_string(::getpid());
    return new std::string(std::move(id));
  }();
  std::string node = EnvString("FERRY_NODE_ID", "");
  if (!node.empty()) return "node-" + node.substr(0, 58);
  return *boot_id;
}

}  // namespace ferry
