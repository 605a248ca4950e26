#include "ferry/transport/gloo/gloo_transport.h"

#include <gloo/common/error.h>
#include <gloo/context.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include "ferry/common/logging.h"

namespace ferry::transport {
namespace {

// Carries a store failure through Gloo's code back to our boundary, keeping
// its Status (DeadlineExceeded stays DeadlineExceeded).
struct StoreFailure : std::runtime_error {
  explicit StoreFailure(Status s) : std::runtime_error(s.ToString()), status(std::move(s)) {}
  Status status;
};

// gloo::rendezvous::Store over a RendezvousStore, every key under "<prefix>/".
class StoreAdapter : public gloo::rendezvous::Store {
 public:
  StoreAdapter(RendezvousStore& store, std::string prefix, std::chrono::milliseconds timeout)
      : store_(store), prefix_(std::move(prefix)), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    Status s = store_.Set(Key(key), std::string(data.begin(), data.end()));
    if (!s.ok()) throw StoreFailure(std::move(s));
  }

  std::vector<char> get(const std::string& key) override {
    auto value = store_.Get(Key(key), Deadline::After(timeout_));
    if (!value.ok()) throw StoreFailure(value.status());
    return std::vector<char>(value->begin(), value->end());
  }

  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }

  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    // Gloo passes 0 for "no timeout"; ours is always bounded.
    Deadline deadline = Deadline::After(timeout.count() > 0 ? std::min(timeout, timeout_)
                                                            : timeout_);
    for (const auto& key : keys) {
      auto value = store_.Get(Key(key), deadline);
      if (!value.ok()) throw StoreFailure(value.status());
    }
  }

 private:
  std::string Key(const std::string& key) const { return prefix_ + "/" + key; }

  RendezvousStore& store_;
  const std::string prefix_;
  const std::chrono::milliseconds timeout_;
};

// Sent first under a transfer's slot; the receiver compares it with its own.
struct WireHeader {
  uint64_t magic = 0;
  uint64_t count = 0;
  uint64_t total_bytes = 0;
  uint64_t sizes_hash = 0;
  bool operator==(const WireHeader&) const = default;
};
constexpr uint64_t kMagic = 0x4645525259544e31ull;  // "FERRYTN1"

WireHeader HeaderFor(const std::vector<BufferView>& buffers) {
  WireHeader h;
  h.magic = kMagic;
  h.count = buffers.size();
  uint64_t hash = 1469598103934665603ull;  // FNV-1a over the sizes
  for (const auto& b : buffers) {
    h.total_bytes += b.nbytes;
    for (int i = 0; i < 8; ++i) {
      hash ^= (b.nbytes >> (8 * i)) & 0xff;
      hash *= 1099511628211ull;
    }
  }
  h.sizes_hash = hash;
  return h;
}

// Debian's Gloo (2022-05) checks getaddrinfo's result against -1 only, so an
// unresolvable name (EAI_NONAME) makes CreateDevice read an uninitialized
// list and crash. Resolve it here first, with the same hints.
Status CheckResolvable(const std::string& hostname) {
  struct addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* result = nullptr;
  int rv = getaddrinfo(hostname.c_str(), nullptr, &hints, &result);
  if (rv != 0) {
    return Status::InvalidArgument("gloo transport: cannot resolve hostname '" + hostname +
                                   "': " + gai_strerror(rv));
  }
  freeaddrinfo(result);
  return Status::Ok();
}

std::chrono::milliseconds WaitBudget(const Deadline& deadline) {
  // Never pass Gloo a negative timeout (-1 means "use the context default"),
  // and keep huge ones from overflowing its wait_for.
  constexpr auto kMax = std::chrono::hours(24 * 365);
  auto remaining = deadline.Remaining();
  if (remaining >= kMax) return kMax;
  return std::chrono::ceil<std::chrono::milliseconds>(remaining);
}

}  // namespace

struct GlooTransport::Op {
  bool is_send = false;
  int peer = 0;
  uint64_t tag = 0;
  std::vector<BufferView> buffers;
  TransferCallback done;
  Deadline deadline = Deadline::Never();
  WireHeader local_header;
  WireHeader remote_header;  // receive side only
  // Posted Gloo buffers; index 0 is the header. Appended by the waiter under
  // the transport's mu_, read by Abort under mu_, released by the waiter.
  std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>> gloo_buffers;

  std::string Describe() const {
    return std::string(is_send ? "send to" : "recv from") + " rank " + std::to_string(peer) +
           " tag " + std::to_string(tag);
  }
};

StatusOr<std::unique_ptr<GlooTransport>> GlooTransport::Create(RendezvousStore& store,
                                                               const GlooOptions& options) {
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    return Status::InvalidArgument("gloo transport: rank " + std::to_string(options.rank) +
                                   " not in a group of " + std::to_string(options.size));
  }
  if (options.prefix.empty())
    return Status::InvalidArgument("gloo transport: empty rendezvous prefix");
  const std::string where = "gloo transport rank " + std::to_string(options.rank) + "/" +
                            std::to_string(options.size) + " (prefix '" + options.prefix +
                            "', host " + options.hostname + ")";
  FERRY_RETURN_IF_ERROR(CheckResolvable(options.hostname));
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = options.hostname;
    auto device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(options.rank, options.size);
    context->setTimeout(options.timeout);
    StoreAdapter adapter(store, options.prefix, options.timeout);
    context->connectFullMesh(adapter, device);
    return std::unique_ptr<GlooTransport>(new GlooTransport(std::move(context), options));
  } catch (const StoreFailure& e) {
    return e.status.WithContext(where + ": rendezvous");
  } catch (const gloo::IoException& e) {
    return Status::Unavailable(where + ": connecting: " + e.what());
  } catch (const std::exception& e) {
    return Status::Internal(where + ": " + e.what());
  }
}

GlooTransport::GlooTransport(std::shared_ptr<gloo::Context> context, const GlooOptions& options)
    : rank_(options.rank),
      size_(options.size),
      transfer_timeout_(options.transfer_timeout),
      context_(std::move(context)),
      pool_("ferry-gloo") {}

GlooTransport::~GlooTransport() {
  AbortWith(Status::Cancelled("gloo transport destroyed"));
  // pool_, destroyed first, runs and waits for every operation.
}

void GlooTransport::Send(int peer, uint64_t tag, std::vector<BufferView> buffers,
                         TransferCallback done) {
  auto op = std::make_shared<Op>();
  op->is_send = true;
  op->peer = peer;
  op->tag = tag;
  op->buffers = std::move(buffers);
  op->done = std::move(done);
  Post(std::move(op));
}

void GlooTransport::Recv(int peer, uint64_t tag, std::vector<BufferView> buffers,
                         TransferCallback done) {
  auto op = std::make_shared<Op>();
  op->is_send = false;
  op->peer = peer;
  op->tag = tag;
  op->buffers = std::move(buffers);
  op->done = std::move(done);
  Post(std::move(op));
}

void GlooTransport::Abort(Status reason) {
  if (reason.ok()) reason = Status::Aborted("gloo transport aborted");
  AbortWith(std::move(reason));
}

void GlooTransport::Post(std::shared_ptr<Op> op) {
  // The timeout counts from posting, not from when a waiter picks it up.
  op->deadline = Deadline::After(transfer_timeout_);
  op->local_header = HeaderFor(op->buffers);
  pool_.Submit([this, op = std::move(op)] { RunOp(*op); });
}

void GlooTransport::RunOp(Op& op) {
  Status status;
  std::shared_ptr<gloo::Context> context;
  {
    MutexLock lock(mu_);
    if (aborted_) {
      status = *aborted_;
    } else {
      context = context_;
      in_flight_.insert(&op);
    }
  }
  if (status.ok()) {
    if (op.peer < 0 || op.peer >= size_ || op.peer == rank_) {
      status = Status::InvalidArgument("gloo transport: " + op.Describe() +
                                       ": no such peer in a group of " + std::to_string(size_) +
                                       " seen from rank " + std::to_string(rank_));
    } else {
      status = Execute(op, context);
    }
    std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>> release;
    {
      MutexLock lock(mu_);
      in_flight_.erase(&op);
      release.swap(op.gloo_buffers);
    }
    // Gloo's I/O thread holds a buffer while it reads or writes it; the
    // destructor waits for that, so once `release` is gone nothing touches
    // the caller's memory any more.
    release.clear();
    context.reset();
  }
  auto done = std::move(op.done);
  done(std::move(status));
}

Status GlooTransport::WaitBuffer(Op& op, size_t index) {
  gloo::transport::UnboundBuffer* buffer;
  {
    MutexLock lock(mu_);
    buffer = op.gloo_buffers[index].get();
  }
  // Returns false when Abort interrupted it; throws on I/O error or timeout.
  const bool completed = op.is_send ? buffer->waitSend(nullptr, WaitBudget(op.deadline))
                                    : buffer->waitRecv(nullptr, WaitBudget(op.deadline));
  if (completed) return Status::Ok();
  MutexLock lock(mu_);  // interrupted by Abort, which set the reason first
  return aborted_ ? *aborted_ : Status::Aborted("gloo transport: wait interrupted");
}

Status GlooTransport::Execute(Op& op, std::shared_ptr<gloo::Context>& context) {
  Status status;
  try {
    // Creates buffers under mu_ so Abort sees each one as soon as it exists.
    auto add = [&](void* data, size_t nbytes) -> Status {
      auto buffer = context->createUnboundBuffer(data, nbytes);
      MutexLock lock(mu_);
      if (aborted_) return *aborted_;
      op.gloo_buffers.push_back(std::move(buffer));
      return Status::Ok();
    };
    auto post_data = [&]() -> Status {
      const size_t first = op.gloo_buffers.size();
      for (const auto& b : op.buffers) {
        if (b.nbytes > 0) FERRY_RETURN_IF_ERROR(add(b.data, b.nbytes));
      }
      for (size_t i = first; i < op.gloo_buffers.size(); ++i) {
        if (op.is_send) {
          op.gloo_buffers[i]->send(op.peer, op.tag);
        } else {
          op.gloo_buffers[i]->recv(op.peer, op.tag);
        }
      }
      for (size_t i = first; i < op.gloo_buffers.size(); ++i)
        FERRY_RETURN_IF_ERROR(WaitBuffer(op, i));
      return Status::Ok();
    };

    if (op.is_send) {
      FERRY_RETURN_IF_ERROR(add(&op.local_header, sizeof(WireHeader)));
      op.gloo_buffers[0]->send(op.peer, op.tag);
      FERRY_RETURN_IF_ERROR(post_data());
      return WaitBuffer(op, 0);
    }
    FERRY_RETURN_IF_ERROR(add(&op.remote_header, sizeof(WireHeader)));
    op.gloo_buffers[0]->recv(op.peer, op.tag);
    FERRY_RETURN_IF_ERROR(WaitBuffer(op, 0));
    if (!(op.remote_header == op.local_header)) {
      status = Status::InvalidArgument(
          "gloo transport: " + op.Describe() + ": sender has " +
          std::to_string(op.remote_header.count) + " buffers / " +
          std::to_string(op.remote_header.total_bytes) + " bytes, receiver posted " +
          std::to_string(op.local_header.count) + " / " +
          std::to_string(op.local_header.total_bytes) +
          (op.remote_header.count == op.local_header.count &&
                   op.remote_header.total_bytes == op.local_header.total_bytes
               ? " (sizes differ)"
               : ""));
    } else {
      return post_data();
    }
  } catch (const gloo::IoException& e) {
    if (op.deadline.Expired()) {
      status = Status::DeadlineExceeded("gloo transport: " + op.Describe() +
                                        " not completed within " +
                                        std::to_string(transfer_timeout_.count()) + " ms");
    } else {
      status = Status::Unavailable("gloo transport: " + op.Describe() + ": " + e.what());
    }
  } catch (const std::exception& e) {
    status = Status::Internal("gloo transport: " + op.Describe() + ": " + e.what());
  }
  // A failed or mismatched transfer leaves its slot out of step with the
  // peer: the group cannot be trusted any more (DESIGN: a system error
  // destroys the group).
  AbortWith(status);
  return status;
}

void GlooTransport::AbortWith(Status reason) {
  std::shared_ptr<gloo::Context> release;
  {
    MutexLock lock(mu_);
    if (aborted_) return;
    aborted_ = std::move(reason);
    for (Op* op : in_flight_) {
      for (auto& buffer : op->gloo_buffers) {
        buffer->abortWaitSend();
        buffer->abortWaitRecv();
      }
    }
    release = std::move(context_);
  }
  // Outside the lock: the last reference closes every pair, which waits for
  // Gloo's I/O thread.
  release.reset();
}

}  // namespace ferry::transport

namespace ferry::transport {

StatusOr<std::unique_ptr<TwoSidedTransport>> CreateGlooTransport(RendezvousStore& store,
                                                                 const GlooOptions& options) {
  FERRY_ASSIGN_OR_RETURN(auto transport, GlooTransport::Create(store, options));
  return std::unique_ptr<TwoSidedTransport>(std::move(transport));
}

}  // namespace ferry::transport
