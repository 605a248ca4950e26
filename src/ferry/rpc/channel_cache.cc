#include "ferry/rpc/channel_cache.h"

#include <vector>

#include "ferry/common/logging.h"
#include "ferry/rpc/connect.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"

namespace ferry::rpc {

ChannelCache::ChannelCache(IoLoop& loop, proto::Hello hello, std::shared_ptr<Dispatcher> dispatcher,
                           ChannelOptions options)
    : loop_(loop),
      hello_(std::move(hello)),
      dispatcher_(std::move(dispatcher)),
      options_(options) {}

std::shared_ptr<Channel> ChannelCache::Peek(const std::string& address) {
  MutexLock lock(mu_);
  auto it = entries_.find(address);
  if (it == entries_.end() || !it->second.channel || it->second.channel->IsClosed()) return nullptr;
  return it->second.channel;
}

StatusOr<std::shared_ptr<Channel>> ChannelCache::Get(const std::string& address,
                                                     Deadline deadline) {
  std::shared_ptr<Attempt> mine;
  uint64_t generation = 0;
  {
    MutexLock lock(mu_);
    for (;;) {
      Entry& entry = entries_[address];
      if (entry.channel && !entry.channel->IsClosed()) return entry.channel;
      entry.channel.reset();  // closed: drop it
      if (!entry.attempt) break;
      // Someone else is connecting: share their outcome.
      std::shared_ptr<Attempt> theirs = entry.attempt;
      auto done = [&] { return theirs->done; };
      if (deadline.IsNever()) {
        cv_.wait(lock.native(), done);
      } else if (!cv_.wait_until(lock.native(), deadline.time_point(), done)) {
        return Status::DeadlineExceeded("connecting to " + address +
                                        " did not finish before the deadline");
      }
      if (!theirs->status.ok()) return theirs->status;
      if (theirs->channel && !theirs->channel->IsClosed()) return theirs->channel;
      // Their channel already closed again, or CloseAll ran: look again.
    }
    FERRY_CHECK(!loop_.InLoopThread())
        << "ChannelCache::Get(" << address << ") must connect and would block the io thread";
    mine = std::make_shared<Attempt>();
    entries_[address].attempt = mine;
    generation = generation_;
  }

  StatusOr<std::shared_ptr<Channel>> result = Connect(loop_, address, hello_, dispatcher_, deadline,
                                                      options_);

  std::shared_ptr<Channel> stale;  // closed outside the lock
  {
    MutexLock lock(mu_);
    mine->done = true;
    if (result.ok()) {
      mine->channel = *result;
      if (generation != generation_) {
        stale = *result;  // CloseAll ran meanwhile: do not resurrect the entry
        mine->status = Status::Unavailable("channel cache closed while connecting to " + address);
      }
    } else {
      mine->status = result.status();
    }
    auto it = entries_.find(address);
    if (it != entries_.end() && it->second.attempt == mine) {
      it->second.attempt.reset();
      if (!stale && result.ok()) it->second.channel = *result;
      if (!it->second.channel) entries_.erase(it);
    }
    cv_.notify_all();
  }
  if (stale) {
    stale->Close();
    return mine->status;
  }
  return result;
}

void ChannelCache::Add(const std::string& address, std::shared_ptr<Channel> channel) {
  MutexLock lock(mu_);
  entries_[address].channel = std::move(channel);
}

void ChannelCache::CloseAll() {
  std::vector<std::shared_ptr<Channel>> channels;
  {
    MutexLock lock(mu_);
    ++generation_;
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.channel) channels.push_back(std::move(it->second.channel));
      if (it->second.attempt) {
        ++it;  // its connector removes it when done
      } else {
        it = entries_.erase(it);
      }
    }
  }
  for (auto& channel : channels) channel->Close();
}

size_t ChannelCache::size() const {
  MutexLock lock(mu_);
  return entries_.size();
}

}  // namespace ferry::rpc
