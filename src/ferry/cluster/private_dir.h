// Directories only this user controls, for files that hold what others must
// not read or replace: worker logs, the session file with the cluster
// token. The rule is the one `ferry start` applies to its temp dir
// (python/ferry/_private/cluster_address.py).
#pragma once

#include <string>

#include "ferry/status.h"

namespace ferry::cluster {

// Makes `dir` (absolute) and its missing parents with mode 0700, and checks
// that no one else can change what it holds: every directory on the path is
// a real directory (no symlink) of this user or of root, one that others may
// write to is sticky (as /tmp), and `dir` itself is this user's and not
// writable by others. PermissionDenied says which directory fails.
Status MakePrivateDir(const std::string& dir);

}  // namespace ferry::cluster
