#include "ferry/transport/ucx/ucx_transport.h"

#include <poll.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>

#include "ferry/common/config.h"
#include "ferry/common/logging.h"
#include "ferry/transport/ucx/ucx_cma.h"
#include "ferry/transport/ucx/ucx_descriptor.h"
#include "ferry/transport/ucx/ucx_lane.h"

#if defined(__SANITIZE_THREAD__)
#define FERRY_UCX_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FERRY_UCX_UNDER_TSAN 1
#endif
#endif

namespace ferry::transport {
namespace {

#ifdef FERRY_UCX_UNDER_TSAN
constexpr bool kUnderTsan = true;
#else
constexpr bool kUnderTsan = false;
#endif

using ucx::KeepWorst;
using ucx::Ucs;

// Bound on one sleep of the service thread; the destructor wakes it sooner.
constexpr int kServeSleepMs = 1000;
// Stripes of a split item start on this alignment.
constexpr uint64_t kStripeAlign = 64 * 1024;
constexpr int kMaxLanes = 16;

}  // namespace

UcxOptions UcxOptions::FromEnv() {
  UcxOptions o;
  o.pull_lanes = static_cast<int>(EnvInt("FERRY_UCX_PULL_LANES", o.pull_lanes));
  o.stripe_min_bytes = static_cast<uint64_t>(std::max<int64_t>(
      0, EnvInt("FERRY_UCX_STRIPE_MIN_BYTES", static_cast<int64_t>(o.stripe_min_bytes))));
  o.spin = std::chrono::microseconds(
      std::max<int64_t>(0, EnvInt("FERRY_UCX_SPIN_US", o.spin.count())));
  o.max_sleep = ClampedMillis(EnvInt("FERRY_UCX_MAX_SLEEP_MS", o.max_sleep.count()));
  o.close_timeout = ClampedMillis(EnvInt("FERRY_UCX_CLOSE_TIMEOUT_MS", o.close_timeout.count()));
  o.same_host_cma = EnvInt("FERRY_UCX_CMA", o.same_host_cma ? 1 : 0) != 0;
  o.default_tls = EnvString("FERRY_UCX_TLS", o.default_tls);
  return o;
}

StatusOr<std::unique_ptr<UcxTransport>> UcxTransport::Create(const UcxOptions& options) {
  if (kUnderTsan && std::getenv("UCX_MEM_EVENTS") == nullptr) {
    // UCX's hook on madvise runs when any thread exits and crashes inside
    // ThreadSanitizer's runtime; UCX reads this switch when it is loaded.
    FERRY_LOG(WARNING)
        << "ucx transport: under ThreadSanitizer set UCX_MEM_EVENTS=no in the environment";
  }
  ucp_config_t* config = nullptr;
  ucs_status_t s = ucp_config_read(nullptr, nullptr, &config);
  if (s != UCS_OK)
    return Status::Internal("ucx transport: reading the UCX configuration: " + Ucs(s));
  if (!options.default_tls.empty() && std::getenv("UCX_TLS") == nullptr) {
    s = ucp_config_modify(config, "TLS", options.default_tls.c_str());
    if (s != UCS_OK) {
      ucp_config_release(config);
      return Status::InvalidArgument("ucx transport: UCX_TLS='" + options.default_tls +
                                     "': " + Ucs(s));
    }
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED |
                      UCP_PARAM_FIELD_NAME;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
  // Lanes are progressed by different threads at once.
  params.mt_workers_shared = 1;
  params.name = "ferry";
  ucp_context_h context = nullptr;
  s = ucp_init(&params, config, &context);
  ucp_config_release(config);
  if (s != UCS_OK) return Status::Unavailable("ucx transport: ucp_init: " + Ucs(s));
  std::unique_ptr<UcxTransport> transport(new UcxTransport(options, context));
  FERRY_RETURN_IF_ERROR(transport->Init());
  return transport;
}

UcxTransport::UcxTransport(const UcxOptions& options, ucp_context* context)
    : options_(options), context_(context), pool_("ferry-ucx-lane") {}

Status UcxTransport::Init() {
  const int lanes = std::clamp(options_.pull_lanes, 1, kMaxLanes);
  for (int i = 0; i < lanes; ++i) {
    auto lane = std::make_unique<Lane>();
    lane->index = i;
    ucp_worker_params_t params{};
    params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    // Our lane mutex serializes every call on a worker.
    params.thread_mode = UCS_THREAD_MODE_SERIALIZED;
    ucs_status_t s = ucp_worker_create(context_, &params, &lane->worker);
    if (s != UCS_OK) return Status::Unavailable("ucx transport: ucp_worker_create: " + Ucs(s));
    lanes_.push_back(std::move(lane));
    s = ucp_worker_get_efd(lanes_.back()->worker, &lanes_.back()->efd);
    if (s != UCS_OK) return Status::Unavailable("ucx transport: ucp_worker_get_efd: " + Ucs(s));
  }
  ucp_address_t* address = nullptr;
  size_t address_len = 0;
  ucs_status_t s = ucp_worker_get_address(lanes_[0]->worker, &address, &address_len);
  if (s != UCS_OK) return Status::Unavailable("ucx transport: ucp_worker_get_address: " + Ucs(s));
  // Producers publish their identity even when this process reads with UCP
  // only: the choice is the consumer's.
  host_key_ = ucx::HostKey();
  const uint64_t pid = static_cast<uint64_t>(getpid());
  const uint64_t start_time = ucx::ProcessStartTime(pid);
  if (start_time == 0) host_key_.clear();  // cannot be named safely: no CMA to or from it
  endpoint_ = ucx::EncodeEndpoint(pid, start_time, host_key_, address, address_len);
  ucp_worker_release_address(lanes_[0]->worker, address);
  service_thread_ = std::thread([this] { ServeLoop(); });
  return Status::Ok();
}

UcxTransport::~UcxTransport() {
  if (service_thread_.joinable()) {
    Lane& lane = *lanes_[0];
    {
      MutexLock lock(lane.mu);
      stopping_ = true;
      lane.idle_cv.notify_all();
    }
    ucp_worker_signal(lane.worker);
    service_thread_.join();
  }
  for (auto& lane : lanes_) lane->Shutdown(options_.close_timeout);
  {
    MutexLock lock(regions_mu_);
    for (auto& [key, region] : regions_) ucp_mem_unmap(context_, region.memh);
    regions_.clear();
  }
  ucp_cleanup(context_);
}

const std::string& UcxTransport::name() const {
  static const std::string kName = "nixl";
  return kName;
}

void UcxTransport::ServeLoop() {
  Lane& lane = *lanes_[0];
  while (!stopping_) {
    {
      MutexLock lock(lane.mu);
      if (lane.active_pulls > 0) {
        // Pull threads progress this worker now; stay out of their way.
        lane.idle_cv.wait(lock.native(), [&]() FERRY_REQUIRES(lane.mu) {
          return lane.active_pulls == 0 || stopping_;
        });
        continue;
      }
      while (lane.ProgressLocked() > 0) {
      }
      if (ucp_worker_arm(lane.worker) == UCS_ERR_BUSY) continue;
    }
    struct pollfd pfd {
      lane.efd, POLLIN, 0
    };
    poll(&pfd, 1, kServeSleepMs);
  }
}

StatusOr<ExportedBuffers> UcxTransport::Export(const std::vector<BufferView>& buffers) {
  ExportedBuffers out;
  out.endpoint = endpoint_;
  out.descriptors.reserve(buffers.size());
  MutexLock lock(regions_mu_);
  std::vector<std::pair<uintptr_t, uint64_t>> taken;  // undone if a later buffer fails
  auto undo = [&]() FERRY_REQUIRES(regions_mu_) {
    for (const auto& key : taken) {
      auto it = regions_.find(key);
      if (--it->second.refs == 0) {
        ucp_mem_unmap(context_, it->second.memh);
        regions_.erase(it);
      }
    }
  };
  for (size_t i = 0; i < buffers.size(); ++i) {
    const BufferView& b = buffers[i];
    if (b.nbytes == 0) {
      out.descriptors.push_back(ucx::EncodeDescriptor(0, 0, nullptr, 0));
      continue;
    }
    if (b.data == nullptr) {
      undo();
      return Status::InvalidArgument("ucx transport: buffer " + std::to_string(i) + " has " +
                                     std::to_string(b.nbytes) + " bytes and no address");
    }
    const auto key = std::make_pair(reinterpret_cast<uintptr_t>(b.data), b.nbytes);
    auto it = regions_.find(key);
    if (it == regions_.end()) {
      ucp_mem_map_params_t params{};
      params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
      params.address = b.data;
      params.length = b.nbytes;
      Region region;
      ucs_status_t s = ucp_mem_map(context_, &params, &region.memh);
      void* rkey = nullptr;
      size_t rkey_len = 0;
      if (s == UCS_OK) {
        s = ucp_rkey_pack(context_, region.memh, &rkey, &rkey_len);
        if (s != UCS_OK) ucp_mem_unmap(context_, region.memh);
      }
      if (s != UCS_OK) {
        undo();
        const std::string what = "ucx transport: registering buffer " + std::to_string(i) + " (" +
                                 std::to_string(b.nbytes) + " bytes): " + Ucs(s);
        if (s == UCS_ERR_NO_MEMORY || s == UCS_ERR_NO_RESOURCE)
          return Status::ResourceExhausted(what);
        if (s == UCS_ERR_INVALID_PARAM || s == UCS_ERR_INVALID_ADDR)
          return Status::InvalidArgument(what);
        return Status::Aborted(what);
      }
      region.descriptor = ucx::EncodeDescriptor(key.first, key.second, rkey, rkey_len);
      ucp_rkey_buffer_release(rkey);
      it = regions_.emplace(key, std::move(region)).first;
    }
    ++it->second.refs;
    taken.push_back(key);
    out.descriptors.push_back(it->second.descriptor);
  }
  // Over an emulated get (tcp) it is lane 0's serving thread that reads the
  // buffers. The real ordering runs through the consumer (it asks only after
  // it got the descriptors), which the C++ memory model and TSan cannot see;
  // taking the lock that thread holds while serving makes the buffers'
  // contents visible to it.
  MutexLock publish(lanes_[0]->mu);
  return out;
}

void UcxTransport::Release(const std::vector<BufferView>& buffers) {
  MutexLock lock(regions_mu_);
  // The other half of the edge in Export: whatever lane 0's thread served
  // from these buffers happens before the caller reuses or frees them.
  { MutexLock unpublish(lanes_[0]->mu); }
  for (const BufferView& b : buffers) {
    if (b.nbytes == 0) continue;
    auto it = regions_.find({reinterpret_cast<uintptr_t>(b.data), b.nbytes});
    if (it == regions_.end()) continue;
    if (--it->second.refs == 0) {
      ucp_mem_unmap(context_, it->second.memh);
      regions_.erase(it);
    }
  }
}

Status UcxTransport::Pull(std::span<const PullItem> items, Deadline deadline) {
  // Everything is checked before anything is posted.
  std::vector<std::unique_ptr<GetOp>> whole;
  uint64_t total = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const PullItem& item = items[i];
    auto descriptor = ucx::ParseDescriptor(item.descriptor);
    if (!descriptor.ok()) return descriptor.status().WithContext("item " + std::to_string(i));
    if (item.dst.nbytes != descriptor->length) {
      return Status::InvalidArgument("ucx transport: item " + std::to_string(i) +
                                     ": destination has " + std::to_string(item.dst.nbytes) +
                                     " bytes, the exported buffer " +
                                     std::to_string(descriptor->length));
    }
    if (descriptor->length == 0) continue;
    if (item.dst.data == nullptr) {
      return Status::InvalidArgument("ucx transport: item " + std::to_string(i) +
                                     ": destination has no address");
    }
    auto endpoint = ucx::ParseEndpoint(item.endpoint);
    if (!endpoint.ok()) return endpoint.status().WithContext("item " + std::to_string(i));
    auto op = std::make_unique<GetOp>();
    op->item = i;
    op->endpoint = item.endpoint;
    op->address = endpoint->address;
    op->rkey_bytes = descriptor->rkey;
    op->remote_address = descriptor->address;
    op->dst = item.dst.data;
    op->length = descriptor->length;
    if (options_.same_host_cma && !host_key_.empty() && endpoint->host_key == host_key_) {
      auto peer = CmaPeerFor(item.endpoint, endpoint->pid, endpoint->start_time);
      if (!peer.ok()) return peer.status().WithContext("item " + std::to_string(i));
      if (!(*peer)->denied) op->cma = *std::move(peer);
    }
    total += op->length;
    whole.push_back(std::move(op));
  }
  if (whole.empty()) return Status::Ok();
  if (deadline.Expired())
    return Status::DeadlineExceeded("ucx transport: the deadline passed before the pull");

  // Assign ops to lanes. A small pull stays on one lane (round robin, so
  // concurrent small pulls spread); a large one is striped over all.
  const size_t nlanes = lanes_.size();
  std::vector<std::unique_ptr<GetOp>> ops;
  std::vector<std::vector<GetOp*>> per_lane(nlanes);
  if (nlanes == 1 || total < options_.stripe_min_bytes) {
    const size_t lane = next_lane_.fetch_add(1, std::memory_order_relaxed) % nlanes;
    for (auto& op : whole) per_lane[lane].push_back(op.get());
    ops = std::move(whole);
  } else {
    std::vector<uint64_t> load(nlanes, 0);
    for (auto& op : whole) {
      if (op->length >= options_.stripe_min_bytes) {
        uint64_t piece = (op->length + nlanes - 1) / nlanes;
        piece = (piece + kStripeAlign - 1) / kStripeAlign * kStripeAlign;
        for (uint64_t offset = 0, lane = 0; offset < op->length; offset += piece, ++lane) {
          auto stripe = std::make_unique<GetOp>(*op);
          stripe->remote_address += offset;
          stripe->dst = static_cast<char*>(op->dst) + offset;
          stripe->length = std::min(piece, op->length - offset);
          load[lane] += stripe->length;
          per_lane[lane].push_back(stripe.get());
          ops.push_back(std::move(stripe));
        }
      } else {
        const size_t lane = std::min_element(load.begin(), load.end()) - load.begin();
        load[lane] += op->length;
        per_lane[lane].push_back(op.get());
        ops.push_back(std::move(op));
      }
    }
  }

  // This thread drives the first busy lane; pool threads drive the others.
  struct Join {
    Mutex mu;
    std::condition_variable cv;
    int pending FERRY_GUARDED_BY(mu) = 0;
    Status worst FERRY_GUARDED_BY(mu);
  } join;
  int inline_lane = -1;
  for (size_t lane = 0; lane < nlanes; ++lane) {
    if (per_lane[lane].empty()) continue;
    if (inline_lane < 0) {
      inline_lane = static_cast<int>(lane);
      continue;
    }
    {
      MutexLock lock(join.mu);
      ++join.pending;
    }
    pool_.Submit([this, &join, &per_lane, lane, deadline] {
      Status s = lanes_[lane]->Run(per_lane[lane], deadline, options_);
      MutexLock lock(join.mu);
      KeepWorst(join.worst, std::move(s));
      if (--join.pending == 0) join.cv.notify_all();
    });
  }
  Status worst = lanes_[inline_lane]->Run(per_lane[inline_lane], deadline, options_);
  {
    // Each lane's Run ends by the deadline plus close_timeout.
    MutexLock lock(join.mu);
    join.cv.wait(lock.native(), [&]() FERRY_REQUIRES(join.mu) { return join.pending == 0; });
    KeepWorst(worst, join.worst);
  }
  for (auto& op : ops) {
    // A producer found gone is forgotten: the next Pull fails at once.
    if (op->cma != nullptr && op->error.code() == StatusCode::kUnavailable) DropCmaPeer(op->cma);
    if (op->leaked) op.release();  // UCX may still complete it; see Lane::Run
  }
  return worst;
}

UcxTransport::Stats UcxTransport::stats() {
  Stats stats;
  stats.lanes = static_cast<int>(lanes_.size());
  {
    MutexLock lock(regions_mu_);
    stats.registered_regions = regions_.size();
  }
  {
    MutexLock lock(cma_mu_);
    stats.cma_peers = cma_peers_.size();
  }
  for (auto& lane : lanes_) {
    MutexLock lock(lane->mu);
    stats.cached_endpoints += lane->peers.size();
  }
  return stats;
}

void SetUcxEnvironmentDefaults() {
  // The emulated get over tcp (another host without RDMA) moves one segment
  // per round trip: 64k/128k instead of UCX's 8k/64k lifts it from ~0.5x of a
  // raw TCP stream to line rate between two hosts (bench/cluster_transfer.py).
  // ucp_config_modify does not reach transport settings; overwrite = 0 keeps
  // the user's.
  ::setenv("UCX_TCP_TX_SEG_SIZE", "64k", 0);
  ::setenv("UCX_TCP_RX_SEG_SIZE", "128k", 0);
}

StatusOr<std::unique_ptr<OneSidedTransport>> CreateUcxTransport() {
  FERRY_ASSIGN_OR_RETURN(auto transport, UcxTransport::Create(UcxOptions::FromEnv()));
  return std::unique_ptr<OneSidedTransport>(std::move(transport));
}

}  // namespace ferry::transport
