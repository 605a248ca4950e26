// UcxTransport: a OneSidedTransport built on UCP (UCX 1.13). The producer
// maps each exported buffer into its UCP context (ucp_mem_map) and publishes
// its identity and worker address as the endpoint and (address, length,
// packed rkey) as each descriptor; a consumer reads the bytes without the
// producer's threads taking part. Create it through CreateUcxTransport
// (factory.h) or UcxTransport::Create. README.md has the UCX transports it
// uses and the measured figures.
//
// Two data paths, chosen per producer:
//  * UCP get: an endpoint to the producer's worker (UCP_ERR_HANDLING_MODE_PEER)
//    and ucp_get_nbx with the unpacked rkey. Used across hosts (tcp today,
//    rc/dc verbs on RDMA hardware) and whenever the path below is off or
//    refused.
//  * Same-host CMA: when the producer runs on this host in this pid
//    namespace, the consumer reads its memory with process_vm_readv, which
//    is what UCX's own cma transport does. UCX 1.13 never uses cma for
//    ucp_get_nbx on user memory: with PEER error handling its get is
//    emulated over tcp loopback (under 1 GB/s here; CMA: 7-10 GB/s).
//    The producer is named by pid and start time and watched through a
//    pidfd, so a recycled pid is never read. FERRY_UCX_CMA=0 turns it off.
//
// Workers and lanes. One UCP context per transport. Lane 0 is the worker
// whose address is published: a service thread progresses it while no Pull
// does (wire-up, and the producer half of emulated gets), sleeping on its
// event fd. Lanes 1..pull_lanes-1 are extra consumer-side workers, never
// published: a Pull of at least `stripe_min_bytes` splits its bytes across
// every lane and drives each lane from its own thread, because a CMA copy
// runs on the CPU of the thread that makes it (256 MiB here: ~4.3 GB/s with
// one thread, 7-10 with two). With pull_lanes = 1 there is one worker.
//
// Registrations are cached per region (address, length) and reference
// counted: exporting a region again maps nothing new, Release unmaps it when
// the count reaches zero. Endpoints to producers are created on first use
// and cached per (lane, endpoint string); an endpoint whose peer failed, or
// that a Pull had to force-close at its deadline, is dropped so the next Pull
// reconnects. Same-host producers are cached likewise (pidfd per producer).
//
// Lifecycle: Create makes the context, the lanes and the service thread; the
// destructor stops the service thread, force-closes every endpoint, unmaps
// every registration and destroys the workers and the context. It must not
// run while another thread is inside a method.
//
// THREAD CONTRACT: thread-safe, by our own locking: each worker runs in
// UCS_THREAD_MODE_SERIALIZED and is only touched under its lane's mutex, and
// the context is created with mt_workers_shared so lanes may progress
// concurrently. Pull blocks its thread until every item is copied, the
// deadline passes or a peer fails, and never returns while a copy could
// still write into one of its `dst` buffers. A waiting Pull spins on worker
// progress for `spin`, then sleeps on the lane's event fd for at most
// `max_sleep` at a time (ucp_worker_arm + poll), so an idle wait burns no
// core. No callback of ours runs user code.
//
//   FERRY_ASSIGN_OR_RETURN(auto producer, UcxTransport::Create());
//   FERRY_ASSIGN_OR_RETURN(ExportedBuffers e, producer->Export({{data, n}}));
//   // ... e.endpoint and e.descriptors travel to the consumer ...
//   PullItem item{e.endpoint, e.descriptors[0], {dst, n}};
//   FERRY_RETURN_IF_ERROR(consumer->Pull({&item, 1}, Deadline::After(60s)));
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ferry/common/thread_annotations.h"
#include "ferry/transport/one_sided_transport.h"
#include "ferry/transport/ucx/factory.h"
#include "ferry/transport/waiter_pool.h"

struct ucp_context;
struct ucp_mem;

namespace ferry::transport {

struct UcxOptions {
  // FERRY_UCX_PULL_LANES: workers a large Pull is striped over, each driven
  // by its own thread (see the file comment). Default 2; 1 = one worker.
  int pull_lanes = 2;
  // FERRY_UCX_STRIPE_MIN_BYTES: a Pull moving fewer bytes than this runs on
  // one lane in the calling thread: below it, handing half to another thread
  // costs more than it saves (1 MiB: ~10 GB/s whole, ~6 striped, mostly in
  // cache). Default 4 MiB.
  uint64_t stripe_min_bytes = uint64_t{4} << 20;
  // FERRY_UCX_SPIN_US: how long a waiting Pull keeps progressing the worker
  // before it sleeps on the worker's event fd. Default 100 us.
  std::chrono::microseconds spin{100};
  // FERRY_UCX_MAX_SLEEP_MS: bound on one sleep on the event fd, so a missed
  // wake-up costs at most this much. Default 10 ms.
  std::chrono::milliseconds max_sleep{10};
  // FERRY_UCX_CLOSE_TIMEOUT_MS: after a Pull's deadline passed, how long it
  // may spend force-closing the endpoints of its unfinished gets (which makes
  // UCX complete them) before it gives up. Default 5000 ms.
  std::chrono::milliseconds close_timeout{5000};
  // FERRY_UCX_CMA: read same-host producers with process_vm_readv instead
  // of UCP get (see the file comment). Default true.
  bool same_host_cma = true;
  // FERRY_UCX_TLS: the UCX_TLS used when the environment does not set
  // UCX_TLS itself; empty leaves UCX's own default ("all"). Default empty
  // (see README.md "Choosing UCX_TLS").
  std::string default_tls;

  // The defaults above, overridden by the FERRY_UCX_* variables.
  static UcxOptions FromEnv();
};

class UcxTransport final : public OneSidedTransport {
 public:
  static StatusOr<std::unique_ptr<UcxTransport>> Create(
      const UcxOptions& options = UcxOptions::FromEnv());
  ~UcxTransport() override;
  UcxTransport(const UcxTransport&) = delete;
  UcxTransport& operator=(const UcxTransport&) = delete;

  const std::string& name() const override;
  StatusOr<ExportedBuffers> Export(const std::vector<BufferView>& buffers) override;
  void Release(const std::vector<BufferView>& buffers) override;
  Status Pull(std::span<const PullItem> items, Deadline deadline) override;

  // For tests and metrics; a snapshot, consistent per field.
  struct Stats {
    size_t registered_regions = 0;  // distinct (address, length) mapped now
    size_t cached_endpoints = 0;    // UCP endpoints: (lane, producer) pairs
    size_t cma_peers = 0;           // same-host producers read with CMA
    int lanes = 0;
  };
  Stats stats();

 private:
  struct Lane;
  struct Peer;
  struct CmaPeer;
  struct GetOp;
  struct Region {
    ucp_mem* memh = nullptr;
    std::string descriptor;  // encoded once, returned by every Export of it
    int refs = 0;
  };

  UcxTransport(const UcxOptions& options, ucp_context* context);
  Status Init();
  // The cached same-host producer behind `endpoint`; Unavailable if that
  // process is gone.
  StatusOr<std::shared_ptr<CmaPeer>> CmaPeerFor(std::string_view endpoint, uint64_t pid,
                                                uint64_t start_time);
  void DropCmaPeer(const std::shared_ptr<CmaPeer>& peer);
  // Serves lane 0 for peers (wire-up, emulated get) while no Pull drives it.
  void ServeLoop();

  // Const after construction (Init).
  const UcxOptions options_;
  ucp_context* const context_;
  std::vector<std::unique_ptr<Lane>> lanes_;  // each lane has its own mutex
  std::string endpoint_;                      // identity + lane 0's worker address
  std::string host_key_;                      // boot id + pid namespace; empty: no CMA

  // Own synchronization.
  std::atomic<uint32_t> next_lane_{0};  // round-robin for unstriped pulls
  std::atomic<bool> stopping_{false};
  std::thread service_thread_;

  Mutex regions_mu_;
  std::map<std::pair<uintptr_t, uint64_t>, Region> regions_ FERRY_GUARDED_BY(regions_mu_);

  Mutex cma_mu_;
  std::map<std::string, std::shared_ptr<CmaPeer>, std::less<>> cma_peers_ FERRY_GUARDED_BY(cma_mu_);

  // Runs the stripes of lanes 1.. of a Pull; tasks end by the Pull's deadline
  // plus close_timeout.
  WaiterPool pool_;
};

}  // namespace ferry::transport
