// OutputPrinter: what workers print, shown in the driver's terminal. Each
// line carries a prefix naming its worker, as Ray's do:
//
//   (Trainer pid=4242) step 3 loss 0.25            a worker on this host
//   (rollout pid=4250, node=10.0.0.2) done        a worker on another host
//
// A worker's stdout lines go to the driver's stdout, its stderr lines to the
// driver's stderr, each batch in one write so lines of different workers do
// not mix.
//
// Thread contract: Print() may be called from any thread.
#pragma once

#include <string>

#include "ferry/proto/ferry.pb.h"

namespace ferry::cluster {

class OutputPrinter {
 public:
  // `local_node_ip`: this host's address ("" in the embedded default, where
  // every worker is local).
  explicit OutputPrinter(std::string local_node_ip, int stdout_fd = 1, int stderr_fd = 2)
      : local_node_ip_(std::move(local_node_ip)), stdout_fd_(stdout_fd), stderr_fd_(stderr_fd) {}

  void Print(const proto::WorkerOutput& output) const;
  // The lines as printed, each ending in '\n'.
  std::string Format(const proto::WorkerOutput& output) const;

 private:
  const std::string local_node_ip_;
  const int stdout_fd_;
  const int stderr_fd_;
};

}  // namespace ferry::cluster
