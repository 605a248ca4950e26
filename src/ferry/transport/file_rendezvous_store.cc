#include "ferry/transport/file_rendezvous_store.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace ferry::transport {
namespace {

std::string HexEncode(const std::string& s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

}  // namespace

FileRendezvousStore::FileRendezvousStore(std::string directory)
    : directory_(std::move(directory)) {}

std::string FileRendezvousStore::PathFor(const std::string& key) const {
  return directory_ + "/k_" + HexEncode(key);
}

Status FileRendezvousStore::Set(const std::string& key, const std::string& value) {
  static std::atomic<uint64_t> counter{0};
  const std::string path = PathFor(key);
  const std::string tmp = path + ".tmp." + std::to_string(getpid()) + "." +
                          std::to_string(counter++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(value.data(), static_cast<std::streamsize>(value.size()));
    out.flush();
    if (!out) return Status::Internal("rendezvous store: cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    return Status::Internal("rendezvous store: rename to " + path + ": " + std::strerror(err));
  }
  return Status::Ok();
}

StatusOr<std::string> FileRendezvousStore::Get(const std::string& key, Deadline deadline) {
  const std::string path = PathFor(key);
  for (;;) {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::ostringstream buf;
      buf << in.rdbuf();
      return buf.str();
    }
    if (deadline.Expired()) {
      return Status::DeadlineExceeded("rendezvous key '" + key + "' did not appear in " +
                                      directory_);
    }
    // Polling is the price of needing no server; 1 ms is far below the cost of
    // the connection setup that follows a rendezvous.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace ferry::transport
