// ferry/transport.h: a tensor transport of your own, registered at run time
// and then used by name like a built-in one:
// `.SetTensorTransport("my_tcp")` on a call, with the same errors, freeing and
// transfer log as "nixl" or "shm".
//
// A registered transport is one-sided: the producer exports its tensors'
// memory when the object is stored and the receiver pulls the bytes with what
// the export returned. The two strings of an export (an `endpoint` naming
// the producer, a `descriptor` per buffer) are opaque to ferry; they travel
// with the object's metadata to whoever pulls it.
//
// Register before ferry::Init, in every process: actor workers are your
// binary re-executed, and Init never returns in them, so a registration after
// Init runs in the driver only.
//
// Lifecycle: ferry makes one instance per process (on first use, with the
// factory), keeps it until the process ends, calls Export when an object is
// stored and Release with the same buffers when its owner frees it; the memory
// stays valid and unchanged in between. Pull may be called any number of
// times while the object lives.
//
// THREAD CONTRACT: the instance's methods are called from any ferry thread,
// concurrently; they must be thread-safe. Pull blocks its thread (never one
// of ferry's I/O threads) until every item is copied or `deadline` passes.
// Return a Status for failures or throw: an exception thrown by a method is a
// failed transfer (the consumer's error is TransportError), never a crash.
// A failed Pull must leave the transport usable.
//
//   class MyTcp : public ferry::OneSidedTransport { ... };
//   int main(int argc, char** argv) {
//     ferry::RegisterTensorTransport("my_tcp", {"cpu"},
//                                    [] { return std::make_unique<MyTcp>(); });
//     ferry::Init(argc, argv);
//     auto t = a.Task(&A::Make).SetTensorTransport("my_tcp").Remote();
//   }
//
// examples/cpp/asio_tcp_transport.h is a complete one, over TCP with asio.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry {

// Borrowed memory: ferry keeps it alive for as long as the call needs.
// `data` may be null when `nbytes` is 0.
struct TransportBuffer {
  void* data = nullptr;
  uint64_t nbytes = 0;
};

// What the producer publishes for one object's buffers.
struct ExportedBuffers {
  std::string endpoint;
  std::vector<std::string> descriptors;  // one per exported buffer, in order
};

// One buffer to pull: the producer's endpoint and descriptor, and where to
// put the bytes; `dst.nbytes` equals the exported buffer's length.
struct PullRequest {
  std::string_view endpoint;
  std::string_view descriptor;
  TransportBuffer dst;
};

class OneSidedTransport {
 public:
  virtual ~OneSidedTransport() = default;

  // Makes `buffers` pullable by other processes until Release. Zero-byte
  // buffers are allowed.
  virtual StatusOr<ExportedBuffers> Export(const std::vector<TransportBuffer>& buffers) = 0;

  // Undoes one Export of the same buffers.
  virtual void Release(const std::vector<TransportBuffer>& buffers) = 0;

  // Copies every item's remote buffer into its `dst`; items may name
  // different producers. DeadlineExceeded once `deadline` passes.
  virtual Status Pull(std::span<const PullRequest> items,
                      std::chrono::steady_clock::time_point deadline) = 0;
};

using OneSidedTransportFactory = std::function<std::unique_ptr<OneSidedTransport>()>;

// Registers `make` as the transport `name` for tensors of `devices` (torch
// device types: "cpu", "cuda"). The name is lower-case letters, digits and
// '_', not a built-in one. Registering the same name and devices again
// replaces the factory. Throws InvalidArgumentError for bad input or for a
// name registered with other devices.
void RegisterTensorTransport(const std::string& name, const std::vector<std::string>& devices,
                             OneSidedTransportFactory make);

}  // namespace ferry
