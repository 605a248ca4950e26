#include "ferry/collective/head_kv_store.h"

#include "ferry/proto/ferry.pb.h"

namespace ferry::collective {

Status HeadKvStore::Set(const std::string& key, const std::string& value) {
  proto::KvPut req;
  req.set_key(key);
  req.set_value(value);
  req.set_overwrite(true);
  auto reply = head_->CallSync(proto::KV_PUT, req, Deadline::After(std::chrono::seconds(30)));
  return reply.ok() ? Status::Ok() : reply.status().WithContext("rendezvous set " + key);
}

StatusOr<std::string> HeadKvStore::Get(const std::string& key, Deadline deadline) {
  proto::KvGet req;
  req.set_key(key);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.Remaining());
  req.set_wait_ms(deadline.IsNever() ? int64_t{1} << 40 : std::max<int64_t>(1, left.count()));
  // The Head answers at the deadline at the latest; allow a little slack.
  Deadline rpc_deadline = deadline.IsNever() ? deadline
                                             : Deadline::After(left + std::chrono::seconds(5));
  FERRY_ASSIGN_OR_RETURN(std::string payload, head_->CallSync(proto::KV_GET, req, rpc_deadline));
  proto::KvGetReply reply;
  if (!reply.ParseFromString(payload)) return Status::Internal("malformed KvGetReply");
  if (!reply.found()) {
    return Status::DeadlineExceeded("rendezvous key '" + key +
                                    "' did not appear in time: a peer of the group never joined");
  }
  return reply.value();
}

}  // namespace ferry::collective
