#include "ferry/cluster/private_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ferry::cluster {

Status MakePrivateDir(const std::string& dir) {
  if (dir.empty() || dir[0] != '/') return Status::InvalidArgument("not an absolute path");
  std::string path;
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = dir.find('/', pos + 1);
    path = dir.substr(0, next);
    pos = next;
    if (path.empty() || path == "/") continue;
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::Internal("mkdir " + path + ": " + std::strerror(errno));
    }
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      return Status::Internal("stat " + path + ": " + std::strerror(errno));
    }
    bool last = next == std::string::npos;
    if (!S_ISDIR(st.st_mode)) return Status::PermissionDenied(path + " is not a directory");
    if (st.st_uid != ::getuid() && (last || st.st_uid != 0)) {
      return Status::PermissionDenied(path + " belongs to another user");
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && (last || !(st.st_mode & S_ISVTX))) {
      return Status::PermissionDenied("others can write to " + path);
    }
  }
  return Status::Ok();
}

}  // namespace ferry::cluster
