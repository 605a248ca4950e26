// FakeOneSidedFabric: in-process OneSidedTransports for unit tests of the
// protocols built on one-sided transfers. Each "process" of a test gets a
// transport with its own endpoint; Export records where the buffers are,
// Pull copies them with memcpy. Failures behave like a real backend's: a
// killed endpoint's pulls are Unavailable, a size mismatch or an unknown
// descriptor is InvalidArgument, a released buffer can no longer be pulled,
// a pull whose deadline has passed is DeadlineExceeded (a started copy is
// not interrupted).
//
// Lifecycle: the fabric must outlive its transports.
//
// THREAD CONTRACT: thread-safe; Pull copies on the calling thread.
//
//   FakeOneSidedFabric fabric;
//   auto producer = fabric.Transport("nixl", "process-a");
//   auto consumer = fabric.Transport("nixl", "process-b");
//   FERRY_ASSIGN_OR_RETURN(ExportedBuffers e, producer->Export({{data, n}}));
//   PullItem item{e.endpoint, e.descriptors[0], {dst, n}};
//   FERRY_RETURN_IF_ERROR(consumer->Pull({&item, 1}, Deadline::After(5s)));
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "ferry/common/thread_annotations.h"
#include "ferry/transport/one_sided_transport.h"

namespace ferry::transport {

class FakeOneSidedFabric {
 public:
  // A transport called `name` for the process `endpoint`.
  std::unique_ptr<OneSidedTransport> Transport(std::string name, std::string endpoint);
  // From now on pulls from `endpoint` fail with Unavailable (its process died).
  void Kill(const std::string& endpoint) FERRY_EXCLUDES(mu_);
  // Buffers exported and not yet released, over every endpoint.
  size_t NumExported() FERRY_EXCLUDES(mu_);

  class Endpoint;

 private:
  friend class Endpoint;
  struct Buffer {
    std::string endpoint;
    BufferView view;
  };
  StatusOr<ExportedBuffers> Export(const std::string& endpoint,
                                   const std::vector<BufferView>& buffers) FERRY_EXCLUDES(mu_);
  void Release(const std::string& endpoint, const std::vector<BufferView>& buffers)
      FERRY_EXCLUDES(mu_);
  Status Pull(std::span<const PullItem> items, Deadline deadline) FERRY_EXCLUDES(mu_);

  Mutex mu_;
  uint64_t next_ FERRY_GUARDED_BY(mu_) = 0;
  std::map<std::string, Buffer> buffers_ FERRY_GUARDED_BY(mu_);  // by descriptor
  std::set<std::string> dead_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::transport
