#include "ferry/transport/fake_transport.h"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <thread>
#include <tuple>

#include "ferry/common/clock.h"
#include "ferry/common/logging.h"
#include "ferry/common/thread_annotations.h"

namespace ferry::transport {
namespace {

struct PendingOp {
  int rank = 0;
  bool is_send = false;
  int peer = 0;
  uint64_t tag = 0;
  std::vector<BufferView> buffers;
  TransferCallback done;
  Clock::time_point deadline;
};

// (source rank, destination rank, tag)
using Key = std::tuple<int, int, uint64_t>;

Key KeyOf(const PendingOp& op) {
  return op.is_send ? Key{op.rank, op.peer, op.tag} : Key{op.peer, op.rank, op.tag};
}

std::string Describe(const PendingOp& op) {
  return std::string(op.is_send ? "send" : "recv") + " rank " + std::to_string(op.rank) +
         (op.is_send ? " -> " : " <- ") + std::to_string(op.peer) + " tag " +
         std::to_string(op.tag);
}

// One unit of work for the group thread: a matched pair to copy (send and
// recv), or one failed op (recv empty, status set).
struct Completion {
  PendingOp first;
  std::optional<PendingOp> recv;
  Status status;
};

}  // namespace

class FakeTransportGroup::Hub {
 public:
  Hub(int size, FakeTransportOptions options)
      : size_(size), options_(options), aborted_(size), outstanding_(size, 0) {
    thread_ = std::thread([this] { Run(); });
  }

  ~Hub() {
    {
      MutexLock lock(mu_);
      for (int r = 0; r < size_; ++r)
        AbortLocked(r, Status::Cancelled("fake transport group destroyed"));
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  int size() const { return size_; }

  void Post(PendingOp op) {
    {
      MutexLock lock(mu_);
      ++outstanding_[op.rank];
      op.deadline = Clock::now() + options_.transfer_timeout;
      const int rank = op.rank;
      if (op.peer < 0 || op.peer >= size_ || op.peer == rank) {
        FailLocked(std::move(op), Status::InvalidArgument("fake transport: bad peer rank " +
                                                          std::to_string(op.peer)));
      } else if (aborted_[rank]) {
        FailLocked(std::move(op), *aborted_[rank]);
      } else if (fail_next_) {
        Status s = *std::exchange(fail_next_, std::nullopt);
        FailLocked(std::move(op), s);
        if (fail_next_aborts_) AbortLocked(rank, s);
      } else if (aborted_[op.peer]) {
        Status s = PeerAborted(op.peer);
        FailLocked(std::move(op), s);
        AbortLocked(rank, s);
      } else {
        Match(std::move(op));
      }
    }
    cv_.notify_all();
  }

  void Abort(int rank, Status reason) {
    {
      MutexLock lock(mu_);
      AbortLocked(rank, std::move(reason));
    }
    cv_.notify_all();
  }

  // Waits until every callback of `rank` has returned (the rank is aborted).
  void WaitQuiet(int rank) {
    MutexLock lock(mu_);
    cv_.wait(lock.native(), [&]() FERRY_REQUIRES(mu_) { return outstanding_[rank] == 0; });
  }

  void FailNext(Status status, bool abort_rank) {
    MutexLock lock(mu_);
    fail_next_ = std::move(status);
    fail_next_aborts_ = abort_rank;
  }

 private:
  Status PeerAborted(int peer) FERRY_REQUIRES(mu_) {
    return Status::Aborted("fake transport: peer rank " + std::to_string(peer) +
                           " aborted: " + aborted_[peer]->ToString());
  }

  void Match(PendingOp op) FERRY_REQUIRES(mu_) {
    auto& mine = op.is_send ? sends_ : recvs_;
    auto& theirs = op.is_send ? recvs_ : sends_;
    const Key key = KeyOf(op);
    if (mine.count(key)) {
      FailLocked(std::move(op),
                 Status::InvalidArgument("fake transport: tag reused while pending"));
      return;
    }
    auto it = theirs.find(key);
    if (it == theirs.end()) {
      mine.emplace(key, std::move(op));
      return;
    }
    PendingOp other = std::move(it->second);
    theirs.erase(it);
    PendingOp& send = op.is_send ? op : other;
    PendingOp& recv = op.is_send ? other : op;
    bool sizes_match = send.buffers.size() == recv.buffers.size();
    for (size_t i = 0; sizes_match && i < send.buffers.size(); ++i) {
      sizes_match = send.buffers[i].nbytes == recv.buffers[i].nbytes;
    }
    if (!sizes_match) {
      Status s = Status::InvalidArgument(
          "fake transport: " + Describe(send) +
          ": buffer count or sizes differ between sender and receiver");
      const int a = send.rank, b = recv.rank;
      FailLocked(std::move(send), s);
      FailLocked(std::move(recv), s);
      AbortLocked(a, s);
      AbortLocked(b, s);
      return;
    }
    completions_.push_back(Completion{std::move(send), std::move(recv), Status::Ok()});
  }

  void FailLocked(PendingOp op, Status status) FERRY_REQUIRES(mu_) {
    completions_.push_back(Completion{std::move(op), std::nullopt, std::move(status)});
  }

  // Aborts `rank`: its pending ops fail with `reason`; peers' pending ops
  // that involve it fail and abort those peers, as a closed connection would.
  void AbortLocked(int rank, Status reason) FERRY_REQUIRES(mu_) {
    if (aborted_[rank]) return;
    if (reason.ok()) reason = Status::Aborted("transport aborted");
    aborted_[rank] = reason;
    std::vector<PendingOp> mine, peers;
    for (auto* table : {&sends_, &recvs_}) {
      for (auto it = table->begin(); it != table->end();) {
        if (it->second.rank == rank) {
          mine.push_back(std::move(it->second));
        } else if (it->second.peer == rank) {
          peers.push_back(std::move(it->second));
        } else {
          ++it;
          continue;
        }
        it = table->erase(it);
      }
    }
    for (auto& op : mine) FailLocked(std::move(op), reason);
    Status peer_status = PeerAborted(rank);
    for (auto& op : peers) {
      const int r = op.rank;
      FailLocked(std::move(op), peer_status);
      AbortLocked(r, peer_status);
    }
  }

  void ExpireLocked() FERRY_REQUIRES(mu_) {
    const auto now = Clock::now();
    for (;;) {
      std::optional<PendingOp> expired;
      for (auto* table : {&sends_, &recvs_}) {
        for (auto it = table->begin(); it != table->end(); ++it) {
          if (it->second.deadline <= now) {
            expired = std::move(it->second);
            table->erase(it);
            break;
          }
        }
        if (expired) break;
      }
      if (!expired) return;
      const int rank = expired->rank;
      Status s = Status::DeadlineExceeded(
          "fake transport: " + Describe(*expired) + " not completed within " +
          std::to_string(options_.transfer_timeout.count()) + " ms");
      FailLocked(std::move(*expired), s);
      AbortLocked(rank, s);
    }
  }

  Clock::time_point NextDeadlineLocked() FERRY_REQUIRES(mu_) {
    auto next = Clock::time_point::max();
    for (auto* table : {&sends_, &recvs_}) {
      for (auto& [key, op] : *table) next = std::min(next, op.deadline);
    }
    return next;
  }

  void Run() {
    MutexLock lock(mu_);
    for (;;) {
      ExpireLocked();
      if (!completions_.empty()) {
        Completion c = std::move(completions_.front());
        completions_.pop_front();
        lock.Unlock();
        Execute(c);
        lock.Lock();
        --outstanding_[c.first.rank];
        if (c.recv) --outstanding_[c.recv->rank];
        cv_.notify_all();
        continue;
      }
      if (stopping_ && sends_.empty() && recvs_.empty()) return;
      auto next = NextDeadlineLocked();
      if (next == Clock::time_point::max()) {
        cv_.wait(lock.native());
      } else {
        cv_.wait_until(lock.native(), next);
      }
    }
  }

  // Runs without the lock: copies, then fires the callbacks.
  static void Execute(Completion& c) {
    if (c.recv) {
      for (size_t i = 0; i < c.first.buffers.size(); ++i) {
        if (c.first.buffers[i].nbytes > 0) {
          std::memcpy(c.recv->buffers[i].data, c.first.buffers[i].data, c.first.buffers[i].nbytes);
        }
      }
      auto send_done = std::move(c.first.done);
      auto recv_done = std::move(c.recv->done);
      send_done(Status::Ok());
      recv_done(Status::Ok());
      return;
    }
    auto done = std::move(c.first.done);
    done(c.status);
  }

  const int size_;
  const FakeTransportOptions options_;
  std::thread thread_;

  Mutex mu_;
  std::condition_variable cv_;
  std::vector<std::optional<Status>> aborted_ FERRY_GUARDED_BY(mu_);
  std::vector<int> outstanding_ FERRY_GUARDED_BY(mu_);
  std::map<Key, PendingOp> sends_ FERRY_GUARDED_BY(mu_);
  std::map<Key, PendingOp> recvs_ FERRY_GUARDED_BY(mu_);
  std::deque<Completion> completions_ FERRY_GUARDED_BY(mu_);
  std::optional<Status> fail_next_ FERRY_GUARDED_BY(mu_);
  bool fail_next_aborts_ FERRY_GUARDED_BY(mu_) = true;
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
};

namespace {

class FakeTransport : public TwoSidedTransport {
 public:
  FakeTransport(FakeTransportGroup::Hub* hub, int rank) : hub_(hub), rank_(rank) {}
  ~FakeTransport() override {
    hub_->Abort(rank_, Status::Cancelled("fake transport destroyed"));
    hub_->WaitQuiet(rank_);
  }

  int rank() const override { return rank_; }
  int size() const override { return hub_->size(); }

  void Send(int peer, uint64_t tag, std::vector<BufferView> buffers,
            TransferCallback done) override {
    hub_->Post(PendingOp{rank_, true, peer, tag, std::move(buffers), std::move(done), {}});
  }
  void Recv(int peer, uint64_t tag, std::vector<BufferView> buffers,
            TransferCallback done) override {
    hub_->Post(PendingOp{rank_, false, peer, tag, std::move(buffers), std::move(done), {}});
  }
  void Abort(Status reason) override { hub_->Abort(rank_, std::move(reason)); }

 private:
  FakeTransportGroup::Hub* const hub_;
  const int rank_;
};

}  // namespace

FakeTransportGroup::FakeTransportGroup(int size, FakeTransportOptions options)
    : hub_(std::make_unique<Hub>(size, options)) {}

FakeTransportGroup::~FakeTransportGroup() = default;

std::unique_ptr<TwoSidedTransport> FakeTransportGroup::Transport(int rank) {
  FERRY_CHECK(rank >= 0 && rank < hub_->size()) << "rank " << rank;
  return std::make_unique<FakeTransport>(hub_.get(), rank);
}

void FakeTransportGroup::FailNextTransfer(Status status, bool abort_rank) {
  FERRY_CHECK(!status.ok());
  hub_->FailNext(std::move(status), abort_rank);
}

}  // namespace ferry::transport
