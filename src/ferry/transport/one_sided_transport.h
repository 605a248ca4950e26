// OneSidedTransport: moves tensors by letting the receiver pull them with
// metadata the producer exported when the object was made (UCX get, a
// same-host shared mapping, CUDA IPC). No collective group: any process that
// holds the metadata can pull, and the producer's threads take no part in a
// pull. See docs/architecture.md, "Direct tensor transport".
//
// The metadata is two opaque strings per object, meaningful only to the
// backend that made them: an `endpoint` naming the producer process for this
// transport (its UCX worker address; its pid and host for shm) and one
// `descriptor` per buffer (address, length, remote key...). They travel
// inside the object's RdtInfo over ferry's control plane.
//
// Lifecycle: the producer calls Export when the object is stored and Release
// with the same buffers when the owner frees it; the memory must stay valid
// and unchanged in between. Registrations are cached per memory region and
// reference counted, so exporting the same tensor twice registers it once.
// Consumers call Pull any number of times while the object lives.
//
// THREAD CONTRACT: thread-safe; every method may be called from any thread,
// concurrently. Pull blocks the calling thread (a transfer thread, never an io
// thread) until every item is copied, the deadline passes (DeadlineExceeded)
// or a peer fails: a producer process that is gone is Unavailable; any other
// transport failure is Aborted. A failed Pull leaves the transport usable.
//
//   // producer
//   FERRY_ASSIGN_OR_RETURN(ExportedBuffers e, transport->Export({{data, n}}));
//   Publish(e.endpoint, e.descriptors);            // inside RdtInfo
//   ...
//   transport->Release({{data, n}});               // the object was freed
//   // consumer
//   PullItem item{endpoint, descriptors[0], {dst, n}};
//   FERRY_RETURN_IF_ERROR(transport->Pull({&item, 1}, Deadline::After(60s)));
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/common/clock.h"
#include "ferry/status.h"
#include "ferry/transport/two_sided_transport.h"  // BufferView

namespace ferry::transport {

// What the producer publishes for one object's buffers.
struct ExportedBuffers {
  std::string endpoint;
  std::vector<std::string> descriptors;  // one per exported buffer, in order
};

// One buffer to pull: the producer's endpoint and descriptor, and where to
// put the bytes. `dst.nbytes` must equal the exported buffer's length.
struct PullItem {
  std::string_view endpoint;
  std::string_view descriptor;
  BufferView dst;
};

class OneSidedTransport {
 public:
  virtual ~OneSidedTransport() = default;

  // "nixl", "shm", ...
  virtual const std::string& name() const = 0;

  // Makes `buffers` pullable by other processes until Release. Zero-byte
  // buffers are allowed (their descriptor pulls nothing).
  virtual StatusOr<ExportedBuffers> Export(const std::vector<BufferView>& buffers) = 0;

  // Undoes one Export of the same buffers (drops registrations no longer
  // used). Buffers never exported are ignored.
  virtual void Release(const std::vector<BufferView>& buffers) = 0;

  // Copies every item's remote buffer into its `dst`; items may name
  // different producers. Items are transferred concurrently where the
  // backend can. InvalidArgument for a malformed descriptor or a size that
  // does not match.
  virtual Status Pull(std::span<const PullItem> items, Deadline deadline) = 0;
};

}  // namespace ferry::transport
