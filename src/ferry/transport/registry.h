// The registry of transport backends: the one place that maps a backend name
// ("gloo", "nccl", "shm", ...) to its factory. The core asks it for a
// transport by name and never includes a backend header. Which names exist
// and which this build has is transport_table.h's table.
//
// Lifecycle: CreateTwoSidedTransport blocks until the whole group has joined
// (or connect_timeout passes) and returns a connected transport.
//
// THREAD CONTRACT: thread-safe; ranks of one group in one process call it from
// different threads at the same time.
//
//   TransportOptions options;
//   options.prefix = "group-7/epoch-0"; options.rank = 0; options.size = 2;
//   FERRY_ASSIGN_OR_RETURN(std::unique_ptr<TwoSidedTransport> t,
//                          CreateTwoSidedTransport("gloo", store, options));
//   t->Send(1, tag, {{data, n}}, std::move(done));
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ferry/common/config.h"
#include "ferry/transport/one_sided_transport.h"
#include "ferry/transport/rendezvous_store.h"
#include "ferry/transport/two_sided_transport.h"

namespace ferry::transport {

struct TransportOptions {
  // Namespace of this group instance's keys in the store.
  std::string prefix;
  int rank = 0;
  int size = 1;
  // Address this rank listens on, for backends that listen: the node's IP
  // in a cluster (FERRY_NODE_IP, set for every process of a node), else
  // loopback.
  std::string hostname = EnvString("FERRY_NODE_IP", "127.0.0.1");
  // Bound on joining the group. Default FERRY_TRANSFER_TIMEOUT_S.
  std::chrono::milliseconds connect_timeout = Config::Get().transfer_timeout;
  // Bound on one transfer. Default FERRY_TRANSFER_TIMEOUT_S.
  std::chrono::milliseconds transfer_timeout = Config::Get().transfer_timeout;
};

// `backend` is one of CollectiveBackends() (transport_table.h): "gloo",
// "torch_gloo" (an alias of "gloo", the name the Python API uses) or "nccl".
// Unknown names are InvalidArgument; "nccl" is Unimplemented in this build
// (no CUDA).
StatusOr<std::unique_ptr<TwoSidedTransport>> CreateTwoSidedTransport(
    const std::string& backend, RendezvousStore& store, const TransportOptions& options);

// A one-sided transport ("nixl" over UCX, "shm", or a registered one) for
// this process. Each call makes a new instance; a process keeps one per name.
// Unimplemented when this build lacks the backend, InvalidArgument for an
// unknown name; a registered factory's error is returned as it is.
StatusOr<std::unique_ptr<OneSidedTransport>> CreateOneSidedTransport(const std::string& name);

// Makes a user's one-sided transport (RegisterOneSidedTransport). Called
// once per process that uses it, from any thread; it may block briefly.
using OneSidedFactory = std::function<StatusOr<std::unique_ptr<OneSidedTransport>>()>;

// Registers a user's one-sided transport under `name` for tensors of
// `devices` (device types, "cpu", "cuda"): an entry in the transport table
// and the factory CreateOneSidedTransport calls for the name. Every process
// that exports or pulls with it must register it. Registering the same name
// and devices again replaces the factory; the errors are RegisterTransport's.
Status RegisterOneSidedTransport(const std::string& name, std::vector<std::string> devices,
                                 OneSidedFactory make);

// Makes one rank's connected transport in a collective group of a user's
// two-sided transport (RegisterTwoSidedTransport), as CreateTwoSidedTransport
// does for Gloo: `store` is valid only during the call.
using TwoSidedFactory = std::function<StatusOr<std::unique_ptr<TwoSidedTransport>>(
    RendezvousStore& store, const TransportOptions& options)>;

// Registers a user's two-sided transport: a table entry whose collective
// backend is `name` itself (create_collective_group(backend=name) makes its
// groups) and the factory that joins them. Errors as RegisterOneSidedTransport.
Status RegisterTwoSidedTransport(const std::string& name, std::vector<std::string> devices,
                                 TwoSidedFactory make);

// The one-sided backends this build has (the entries of Transports() that
// CreateOneSidedTransport makes; not "auto", which exports with several).
std::vector<std::string> AvailableOneSidedTransports();

// True if `endpoint`, exported by one-sided transport `name`, names a process
// on this host (only meaningful for "shm"; false for other names).
bool IsLocalEndpoint(const std::string& name, std::string_view endpoint);

// Sets the environment defaults of this build's backends (settings their
// libraries read only from the environment). Call once at process start,
// before other threads run; variables already set are kept.
void SetProcessEnvironmentDefaults();

}  // namespace ferry::transport
