// The session file: how the `ferry` command finds a running embedded
// session (a driver that started ferry itself, with no cluster) to show its
// state (`ferry status`, `ferry list`).
//
// The driver writes <temp dir>/session-<session>/session.json (mode 0600,
// in a private directory: it holds the token) with its address, token and
// pid, and points <temp dir>/session_latest at that directory; it removes
// the file when it shuts down. A cluster needs none: `ferry start` keeps its
// own cluster file.
//
// Thread contract: plain functions; callers serialize writes per session.
#pragma once

#include <string>

#include "ferry/status.h"

namespace ferry::cluster {

struct SessionFileContents {
  std::string session;
  std::string address;  // where the session's head answers ("unix:@...")
  std::string token;
  int pid = 0;
};

// <temp_dir>/session-<session>
std::string SessionDir(const std::string& temp_dir, const std::string& session);

// Writes the file (atomically: a reader sees all of it or none) and
// repoints session_latest. PermissionDenied when the directory is not
// private (private_dir.h).
Status WriteSessionFile(const std::string& temp_dir, const SessionFileContents& contents);
// Removes the file, and session_latest if it still points at this session.
void RemoveSessionFile(const std::string& temp_dir, const std::string& session);

}  // namespace ferry::cluster
