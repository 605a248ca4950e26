// HeadKvStore: the rendezvous store of collective groups, kept in the Head's
// key-value table and reached over the control plane (KV_PUT / KV_GET).
//
// Thread contract: thread-safe; both calls block (never call them on the io
// thread) and are bounded by their deadline.
//
//   HeadKvStore store(head_channel);
//   FERRY_RETURN_IF_ERROR(store.Set("group/g/rank0", address));
//   FERRY_ASSIGN_OR_RETURN(std::string peer, store.Get("group/g/rank1", deadline));
#pragma once

#include <memory>
#include <string>

#include "ferry/rpc/channel.h"
#include "ferry/transport/rendezvous_store.h"

namespace ferry::collective {

class HeadKvStore : public transport::RendezvousStore {
 public:
  explicit HeadKvStore(std::shared_ptr<rpc::Channel> head) : head_(std::move(head)) {}

  Status Set(const std::string& key, const std::string& value) override;
  // Waits for the key until `deadline`; DeadlineExceeded if it never appears.
  StatusOr<std::string> Get(const std::string& key, Deadline deadline) override;

 private:
  std::shared_ptr<rpc::Channel> head_;
};

}  // namespace ferry::collective
