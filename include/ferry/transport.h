// ferry/transport.h: a tensor transport of your own, registered at run time
// and then used by name like a built-in one:
// `.SetTensorTransport("my_tcp")` on a call, with the same errors, freeing and
// transfer log as "nixl", "shm" or "gloo".
//
// Two kinds, as the built-in ones:
// * one-sided (OneSidedTransport, like nixl and shm): the producer exports
//   its tensors' memory when the object is stored and the receiver pulls the
//   bytes with what the export returned. The two strings of an export (an
//   `endpoint` naming the producer, a `descriptor` per buffer) are opaque to
//   ferry; they travel with the object's metadata to whoever pulls it.
// * two-sided (TwoSidedTransport, like gloo): the actors form a collective
//   group with the transport's name as its backend
//   (CreateCollectiveGroup(actors, "my_backend")); each member's factory joins
//   it, and a transfer is a Send in the producer matched by a Recv in the
//   consumer under the same tag, which ferry posts in an order that cannot
//   deadlock.
//
// Register before ferry::Init, in every process: actor workers are your
// binary re-executed, and Init never returns in them, so a registration after
// Init runs in the driver only.
//
// Lifecycle (one-sided): ferry makes one instance per process (on first use,
// with the factory), keeps it until the process ends, calls Export when an
// object is stored and Release with the same buffers when its owner frees it;
// the memory stays valid and unchanged in between. Pull may be called any
// number of times while the object lives.
// Lifecycle (two-sided): one instance per group member, made when the group
// is created and destroyed when it is destroyed or after a failed transfer
// (a system error destroys the group, as with gloo).
//
// THREAD CONTRACT: the instance's methods are called from any ferry thread,
// concurrently; they must be thread-safe. Pull blocks its thread (never one
// of ferry's I/O threads) until every item is copied or `deadline` passes.
// Send and Recv return at once and call `done` exactly once, later, from a
// thread of the transport's own. Return a Status for failures or throw: an
// exception thrown by a method is a failed transfer (the consumer's error is
// TransportError), never a crash. A failed Pull must leave the transport
// usable.
//
//   class MyTcp : public ferry::OneSidedTransport { ... };
//   int main(int argc, char** argv) {
//     ferry::RegisterTensorTransport("my_tcp", {"cpu"},
//                                    [] { return std::make_unique<MyTcp>(); });
//     ferry::Init(argc, argv);
//     auto t = a.Task(&A::Make).SetTensorTransport("my_tcp").Remote();
//   }
//
// examples/cpp/asio_tcp_transport.h is a complete one-sided transport, over
// TCP with asio.
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

// --- two-sided --------------------------------------------------------------

// What a two-sided factory gets: this member's place in the group being
// created and the group's key-value store, through which members find each
// other (publish your address, look up your peers'). Keys are private to this
// group; `publish` and `lookup` work only during the factory call.
struct GroupMember {
  int rank = 0;
  int size = 1;
  // The address to listen on: this node's IP in a cluster, else loopback.
  std::string hostname;
  // Joining must finish by then (the factory then throws or returns an
  // error).
  std::chrono::steady_clock::time_point join_deadline;
  // Bound on one transfer: `done` with DeadlineExceeded after this long.
  std::chrono::milliseconds transfer_timeout{0};
  std::function<Status(const std::string& key, const std::string& value)> publish;
  // Waits for `key`; DeadlineExceeded after `deadline`.
  std::function<StatusOr<std::string>(const std::string& key,
                                      std::chrono::steady_clock::time_point deadline)>
      lookup;
};

using TransferDone = std::function<void(Status)>;

class TwoSidedTransport {
 public:
  // Must abort what is pending and return after every `done` has returned.
  virtual ~TwoSidedTransport() = default;

  // Sends `buffers`, in order, to rank `peer` under `tag` (unique per
  // transfer between a pair). The matching Recv lists as many buffers, of
  // the same sizes.
  virtual void Send(int peer, uint64_t tag, std::vector<TransportBuffer> buffers,
                    TransferDone done) = 0;
  // Receives into `buffers` what rank `peer` sends under `tag`.
  virtual void Recv(int peer, uint64_t tag, std::vector<TransportBuffer> buffers,
                    TransferDone done) = 0;
  // Fails every pending and later transfer with `reason`. Idempotent.
  virtual void Abort(Status reason) = 0;
};

using TwoSidedTransportFactory =
    std::function<std::unique_ptr<TwoSidedTransport>(const GroupMember& member)>;

// Registers `make` as the two-sided transport `name`, also the collective
// backend name its groups are created with. Errors as RegisterTensorTransport.
void RegisterTwoSidedTensorTransport(const std::string& name,
                                     const std::vector<std::string>& devices,
                                     TwoSidedTransportFactory make);

}  // namespace ferry
