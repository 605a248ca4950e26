#include "ferry/cluster/output_printer.h"

#include <unistd.h>

#include <cerrno>

namespace ferry::cluster {

std::string OutputPrinter::Format(const proto::WorkerOutput& output) const {
  std::string prefix = "(" + (output.name().empty() ? std::string("worker") : output.name()) +
                       " pid=" + std::to_string(output.pid());
  if (!output.node_ip().empty() && output.node_ip() != local_node_ip_) {
    prefix += ", node=" + output.node_ip();
  }
  prefix += ") ";
  std::string text;
  for (const std::string& line : output.lines()) text += prefix + line + "\n";
  return text;
}

void OutputPrinter::Print(const proto::WorkerOutput& output) const {
  std::string text = Format(output);
  int fd = output.is_stderr() ? stderr_fd_ : stdout_fd_;
  std::string_view rest = text;
  while (!rest.empty()) {
    ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the terminal went away: the log files keep it
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace ferry::cluster
