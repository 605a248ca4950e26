#include "ferry/common/fault.h"

#include <unistd.h>

#include <map>
#include <string>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"

namespace ferry {
namespace {

std::map<std::string, std::string, std::less<>> ParseFaults() {
  std::map<std::string, std::string, std::less<>> faults;
  std::string spec = EnvString("FERRY_FAULT", "");
  size_t start = 0;
  while (start < spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(start, end - start);
    size_t colon = item.find(':');
    std::string point = item.substr(0, colon);
    std::string action = colon == std::string::npos ? "exit" : item.substr(colon + 1);
    if (!point.empty()) faults[point] = action;
    start = end + 1;
  }
  return faults;
}

}  // namespace

Status InjectFault(std::string_view point) {
  static const auto faults = ParseFaults();
  if (faults.empty()) return Status::Ok();
  auto it = faults.find(point);
  if (it == faults.end()) return Status::Ok();
  if (it->second == "exit") {
    FERRY_LOG(WARNING) << "FERRY_FAULT: exiting at " << point;
    _exit(77);
  }
  return Status::Internal("FERRY_FAULT injected a failure at " + std::string(point));
}

}  // namespace ferry
