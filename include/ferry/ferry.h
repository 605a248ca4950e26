// ferry's C++ API: actors, ObjectRefs and direct tensor transport.
//
// The same runtime as the Python package (CoreWorker, the embedded Head):
// ferry::Init starts it in the driver; actor workers are the user's own
// binary, re-executed (SPMD), so ferry::Init must run first thing in main —
// in a worker it serves the actor and exits the process, never returning.
// Errors are typed exceptions (errors.h); values are serialized with cereal
// (serialize.h); tensors are ferry::Tensor (tensor.h).
//
// Thread contract: every function here is thread-safe once Init returned;
// Init and Shutdown must not race with other calls.
//
//   int main(int argc, char** argv) {
//     ferry::Init(argc, argv);                   // workers never return from here
//     auto a = ferry::Actor(Trainer::Create).Remote(1);
//     double s = *ferry::Get(a.Task(&Trainer::Sum).Remote(t));
//     ferry::Shutdown();
//   }
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ferry/actor.h"
#include "ferry/errors.h"
#include "ferry/object_ref.h"
#include "ferry/serialize.h"
#include "ferry/status.h"
#include "ferry/tensor.h"
#include "ferry/transport.h"

namespace ferry {

// Where the driver runs: the embedded single-host runtime (the default), or
// a cluster started with `ferry start --head` (docs/cluster.md).
struct InitOptions {
  // The cluster's head, "IP:PORT". Empty: FERRY_ADDRESS if set, else the
  // embedded runtime.
  std::string address;
  // The cluster token. Empty: FERRY_TOKEN.
  std::string token;
  // This host's address that other hosts reach. Empty: FERRY_NODE_IP if
  // set, else the local address of the route to the head.
  std::string node_ip;
};

// Starts ferry in this process. In a process spawned by ferry as an actor
// worker (FERRY_HEAD_ADDRESS set) it runs the worker loop and exits the
// process. Throws RegistrationError for FERRY_REMOTE mistakes, or Error when
// the runtime cannot start or the cluster cannot be reached (a wrong token,
// no head at the address: within seconds); calling it twice is a no-op.
void Init(int argc, char** argv, const InitOptions& options = {});
// True in a process ferry spawned as an actor worker.
bool IsWorker();
bool IsInitialized();
// Kills every actor of this driver and stops the runtime. Idempotent.
void Shutdown();

struct GetOptions {
  // Unset: wait forever; otherwise GetTimeoutError after this long.
  std::optional<std::chrono::nanoseconds> timeout;
  // For a value whose tensors stay in their producer with a two-sided
  // transport (gloo, nccl): "object_store" fetches them through the object
  // store. Without it Get of such a value is an InvalidArgumentError (the
  // driver is not in the collective group).
  std::string tensor_transport;
};

namespace internal {
// A fetched value ready to decode; `keep_alive` owns the bytes behind it.
struct FetchedValue {
  DecodeInput input;
  std::shared_ptr<void> keep_alive;
};
// Values of `refs`, throwing the mapped error of the first failed one.
std::vector<FetchedValue> GetRaw(const std::vector<std::shared_ptr<RefState>>& refs,
                                 const GetOptions& options);
std::shared_ptr<RefState> PutRaw(const EncodedValue& value);
std::vector<bool> WaitRaw(const std::vector<std::shared_ptr<RefState>>& refs, size_t num_ready,
                          std::optional<std::chrono::nanoseconds> timeout);
void CreateCollectiveGroupRaw(const std::vector<ActorHandleBase>& actors,
                              const std::string& backend, const std::string& name);
void DestroyCollectiveGroupRaw(const std::string& name);
void WaitTensorFreedRaw(const Tensor& tensor, std::optional<std::chrono::nanoseconds> timeout);

template <typename T>
std::shared_ptr<T> DecodeFetched(const FetchedValue& v) {
  auto out = std::make_shared<T>();
  Decode(v.input, *out);
  return out;
}
template <typename T>
std::vector<std::shared_ptr<RefState>> States(const std::vector<ObjectRef<T>>& refs) {
  std::vector<std::shared_ptr<RefState>> states;
  states.reserve(refs.size());
  for (const auto& r : refs) states.push_back(r.state());
  return states;
}
}  // namespace internal

// The value of `ref` (waits for it). Throws TaskError when the method threw,
// ActorDiedError, ObjectLostError, GetTimeoutError (options.timeout), or
// InvalidArgumentError. ObjectRef<void>: waits and checks, returns nothing.
template <typename T>
auto Get(const ObjectRef<T>& ref, const GetOptions& options = {}) {
  auto values = internal::GetRaw({ref.state()}, options);
  if constexpr (std::is_void_v<T>) {
    return;
  } else {
    return internal::DecodeFetched<T>(values[0]);
  }
}
template <typename T, typename Rep, typename Period>
auto Get(const ObjectRef<T>& ref, std::chrono::duration<Rep, Period> timeout) {
  return Get(ref, GetOptions{std::chrono::duration_cast<std::chrono::nanoseconds>(timeout), ""});
}
// Values of `refs`, in order (one wait for all).
template <typename T>
std::vector<std::shared_ptr<T>> Get(const std::vector<ObjectRef<T>>& refs,
                                    const GetOptions& options = {}) {
  static_assert(!std::is_void_v<T>, "ferry::Get of a vector of ObjectRef<void>: use ferry::Wait");
  auto values = internal::GetRaw(internal::States(refs), options);
  std::vector<std::shared_ptr<T>> out;
  out.reserve(values.size());
  for (const auto& v : values) out.push_back(internal::DecodeFetched<T>(v));
  return out;
}
template <typename T, typename Rep, typename Period>
std::vector<std::shared_ptr<T>> Get(const std::vector<ObjectRef<T>>& refs,
                                    std::chrono::duration<Rep, Period> timeout) {
  return Get(refs, GetOptions{std::chrono::duration_cast<std::chrono::nanoseconds>(timeout), ""});
}

// Stores `value` in this process's object store (tensors as buffers).
template <typename T>
ObjectRef<T> Put(const T& value) {
  static_assert(!IsObjectRef<T>::value, "ferry::Put of an ObjectRef: pass the ref itself");
  return ObjectRef<T>(internal::PutRaw(internal::Encode(value)));
}

template <typename T>
struct WaitResult {
  std::vector<ObjectRef<T>> ready;
  std::vector<ObjectRef<T>> unready;
};
// Splits `refs` into the first `num_ready` that are ready (in the order
// given) and the rest, once that many are ready or `timeout` passed.
template <typename T>
WaitResult<T> Wait(const std::vector<ObjectRef<T>>& refs, size_t num_ready,
                   std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
  if (num_ready > refs.size()) {
    internal::ThrowStatus(Status::InvalidArgument("ferry::Wait: num_ready must be at most " +
                                                  std::to_string(refs.size())));
  }
  std::vector<bool> flags = internal::WaitRaw(internal::States(refs), num_ready, timeout);
  WaitResult<T> out;
  for (size_t i = 0; i < refs.size(); ++i) {
    (flags[i] && out.ready.size() < num_ready ? out.ready : out.unready).push_back(refs[i]);
  }
  return out;
}

// Ends the actor's process now; its pending and later calls raise
// ActorDiedError. With `no_restart` false, an actor whose SetMaxRestarts
// allows restarts instead (Ray's ray.kill(actor, no_restart=False)).
inline void Kill(const ActorHandleBase& actor, bool no_restart = true) {
  internal::KillActorRaw(actor.id(), no_restart);
}

// Connects `actors` (rank = position) for `backend` ("gloo"; "torch_gloo" is
// the same). Blocks until every member joined. Methods called with
// SetTensorTransport(backend) then move tensors between them directly.
inline void CreateCollectiveGroup(const std::vector<ActorHandleBase>& actors,
                                  const std::string& backend, const std::string& name = "default") {
  internal::CreateCollectiveGroupRaw(actors, backend, name);
}
inline void DestroyCollectiveGroup(const std::string& name = "default") {
  internal::DestroyCollectiveGroupRaw(name);
}

// In the actor that returned `tensor` from an RDT method: blocks until ferry
// holds it for no object any more (every ref dropped, every task that takes
// it done), so writing it in place is safe. GetTimeoutError after `timeout`.
inline void WaitTensorFreed(const Tensor& tensor,
                            std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
  internal::WaitTensorFreedRaw(tensor, timeout);
}

}  // namespace ferry
