#include "ferry/cluster/session_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "ferry/cluster/private_dir.h"

namespace ferry::cluster {
namespace {

constexpr char kFileName[] = "session.json";
constexpr char kLatest[] = "session_latest";

// A JSON string literal of `s` (the values here are ASCII, but quote
// anything that needs it).
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

Status Errno(const std::string& what) {
  return Status::Internal(what + ": " + std::strerror(errno));
}

}  // namespace

std::string SessionDir(const std::string& temp_dir, const std::string& session) {
  return temp_dir + "/session-" + session;
}

Status WriteSessionFile(const std::string& temp_dir, const SessionFileContents& contents) {
  const std::string dir = SessionDir(temp_dir, contents.session);
  FERRY_RETURN_IF_ERROR(MakePrivateDir(dir));
  const std::string text = "{\"session\": " + Quoted(contents.session) +
                           ", \"address\": " + Quoted(contents.address) +
                           ", \"token\": " + Quoted(contents.token) +
                           ", \"pid\": " + std::to_string(contents.pid) + "}\n";
  const std::string path = dir + "/" + kFileName;
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("writing " + tmp);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = Errno("writing " + tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("renaming " + tmp);
  // session_latest -> session-<name>, replaced atomically.
  const std::string latest = temp_dir + "/" + kLatest;
  const std::string latest_tmp = latest + "." + std::to_string(contents.pid);
  ::unlink(latest_tmp.c_str());
  if (::symlink(("session-" + contents.session).c_str(), latest_tmp.c_str()) != 0) {
    return Errno("linking " + latest_tmp);
  }
  if (::rename(latest_tmp.c_str(), latest.c_str()) != 0) {
    Status s = Errno("renaming " + latest_tmp);
    ::unlink(latest_tmp.c_str());
    return s;
  }
  return Status::Ok();
}

void RemoveSessionFile(const std::string& temp_dir, const std::string& session) {
  ::unlink((SessionDir(temp_dir, session) + "/" + kFileName).c_str());
  const std::string latest = temp_dir + "/" + kLatest;
  char target[4096];
  ssize_t n = ::readlink(latest.c_str(), target, sizeof target - 1);
  if (n > 0 && std::string(target, static_cast<size_t>(n)) == "session-" + session) {
    ::unlink(latest.c_str());
  }
}

}  // namespace ferry::cluster
