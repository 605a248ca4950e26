// GroupManager: the collective groups this process belongs to, by name.
//
// A group is a two-sided transport (Gloo, NCCL) connected to its peers. A
// system error inside a transfer destroys the group (docs/architecture.md,
// "Direct tensor transport"): it is aborted, every pending transfer fails, and
// later use reports that the group was destroyed and why, until it is re-created.
//
// Thread contract: thread-safe. Join() blocks while the group's members meet
// (call it off the io thread); the rest do not block.
//
//   GroupManager groups;
//   FERRY_RETURN_IF_ERROR(groups.Join(join_request, store));
//   FERRY_ASSIGN_OR_RETURN(auto t, groups.Get("default"));
//   t->Send(peer, tag, views, done);
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ferry/common/thread_annotations.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/transport/rendezvous_store.h"
#include "ferry/transport/two_sided_transport.h"

namespace ferry::collective {

class GroupManager {
 public:
  // Connects this process as `req.rank` of group `req.name`. AlreadyExists if
  // a live group of that name exists here.
  Status Join(const proto::JoinGroup& req, transport::RendezvousStore& store);
  // Installs an already-connected transport as group `name` (Join's last
  // step; tests use it with transport::FakeTransportGroup).
  // `join` describes the membership (List); tests may leave it default.
  void Adopt(const std::string& name, std::shared_ptr<transport::TwoSidedTransport> transport,
             proto::JoinGroup join = {});
  // Leaves (and aborts) the group; no-op if absent.
  void Leave(const std::string& name);
  // The group's transport, or FailedPrecondition saying it is missing or was
  // destroyed (and why).
  StatusOr<std::shared_ptr<transport::TwoSidedTransport>> Get(const std::string& name);
  // A transfer in `name` failed: destroy the group. Safe to call from a
  // transfer callback (the transport object is released later).
  void Destroy(const std::string& name, const Status& cause);
  std::vector<std::string> Names();
  // Every group joined here, destroyed ones included (`ferry list groups`).
  struct Membership {
    proto::JoinGroup join;  // name, backend, rank, size
    Status destroyed;       // non-OK once destroyed
  };
  std::vector<Membership> List() FERRY_EXCLUDES(mu_);
  // Aborts every group (shutdown).
  void Clear();

 private:
  struct Group {
    std::shared_ptr<transport::TwoSidedTransport> transport;
    Status destroyed;  // non-OK once destroyed
    proto::JoinGroup join;
  };
  Mutex mu_;
  std::map<std::string, Group> groups_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::collective
