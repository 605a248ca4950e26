// The table of tensor transports: every name a user may pass as
// `tensor_transport`, what kind it is (object store, one-sided, two-sided),
// which devices' tensors it moves, whether this build has it, and which
// collective-group backends carry it. Every check of a transport or backend
// name, in the core, the C++ API and the Python binding, asks this table;
// the Python package reads it through ferry._core.transports().
//
// Lifecycle: the table is built on first use from this build's configuration
// (ferry/config.h); RegisterTransport appends a user's transport to it at run
// time. Entries are never changed or removed once in the table, so a pointer
// FindTransport returns stays valid for the life of the process.
//
// THREAD CONTRACT: thread-safe; lookups and registrations may race.
//
//   FERRY_RETURN_IF_ERROR(CheckTensorTransport(call.tensor_transport));
//   if (IsTwoSided(name)) { /* needs a collective group */ }
//   for (const TransportInfo& t : Transports()) {
//     if (t.available) std::cout << t.name << "\n";
//   }
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry::transport {

enum class TransportKind {
  kObjectStore,  // tensors are pickled into the object store with the value
  kOneSided,     // the receiver pulls what the producer exported; no group
  kTwoSided,     // sender and receiver both act, inside a collective group
};

// "object_store", "one_sided", "two_sided".
std::string_view TransportKindName(TransportKind kind);

struct TransportInfo {
  // The name users pass ("gloo", "shm", ...), lower case.
  std::string name = {};
  TransportKind kind = TransportKind::kObjectStore;
  // Device types whose tensors it moves ("cpu", "cuda"), as in a device
  // string's part before ':'.
  std::vector<std::string> devices = {};
  // True when this build can move tensors with it.
  bool available = false;
  // True when producer and receiver must be on the same host.
  bool same_host = false;
  // Two-sided only: the collective-group backends whose groups carry it.
  std::vector<std::string> collective_backends = {};
  // One-sided only: the one-sided backends an object of this transport is
  // exported with (itself, or shm on this host plus nixl across hosts for
  // "auto").
  std::vector<std::string> one_sided_backends = {};
  // True for a transport a user registered (RegisterTransport).
  bool custom = false;

  bool operator==(const TransportInfo&) const = default;
};

// Every transport, including those this build lacks, in the order error
// messages list them (the registered ones last). A snapshot.
std::vector<TransportInfo> Transports();

// Adds a user's transport to the table (`custom` is set, `available` is
// true). The name must be lower case letters, digits and '_' and not a
// built-in name; `devices` must not be empty. Registering the same entry again
// is Ok (every process of a program may register it); a different entry under
// a registered name is AlreadyExists. InvalidArgument for bad input.
Status RegisterTransport(TransportInfo info);

// The entry for `name`; "" is "object_store". Null for an unknown name.
const TransportInfo* FindTransport(std::string_view name);

// True for "" and "object_store".
bool IsObjectStore(std::string_view name);
// True for transports where the receiver pulls what the producer exported.
bool IsOneSided(std::string_view name);
// True for transports where both ends act (a collective group is needed).
bool IsTwoSided(std::string_view name);
// True for a transport a user registered (RegisterTransport).
bool IsCustom(std::string_view name);

// The transports this build has, in table order.
std::vector<std::string> AvailableTensorTransports();

// Ok for "", and for the name of a transport this build has; Unimplemented,
// naming the available ones, for any other name.
Status CheckTensorTransport(std::string_view name);

// Ok when `transport` moves tensors on `device` ("cpu", "cuda:0", "meta");
// InvalidArgument saying what to do otherwise. Ok for unknown transports:
// CheckTensorTransport refuses those.
Status CheckTensorDevice(std::string_view transport, std::string_view device);

// Every collective-group backend name, in table order, including those this
// build lacks: "gloo", "torch_gloo" (an alias of "gloo"), "nccl".
std::vector<std::string> CollectiveBackends();

// Ok for a name in CollectiveBackends(); InvalidArgument listing them
// otherwise. (Whether this build has the backend is the registry's answer
// when the group is joined.)
Status CheckCollectiveBackend(std::string_view backend);

// True when groups made with collective `backend` carry objects of
// two-sided `transport` ("gloo" objects move over "gloo" and "torch_gloo"
// groups).
bool BackendServes(std::string_view backend, std::string_view transport);

}  // namespace ferry::transport
