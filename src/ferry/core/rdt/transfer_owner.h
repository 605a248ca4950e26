// TransferOwner: the owner's side of direct tensor transport (docs/architecture.md,
// "Direct tensor transport").
//
// The process that submits a task whose returns stay in the producing actor
// owns those RDT objects. This component keeps what the owner knows of them
// (producer, transport, where each has been passed: enough for the
// mutability warning) and the collective groups this process created, and
// arranges each transfer when a task takes an RDT object as an argument:
//   * to its producer: nothing moves (the producer reads its own store);
//   * over a one-sided transport: nothing to arrange, the receiver pulls
//     with the exports inside the value;
//   * over a two-sided transport: picks a group holding both actors and a
//     tag unique to this transfer, tells the producer to send
//     (SEND_TENSORS), and tells the receiver, in the task argument, to
//     receive; a small object is fetched by the receiver instead, and so is
//     any object whose two ranks share a host (the receiver reads the
//     producer's memory through the shm export the producer added, as NCCL
//     moves bytes inside a node; SameHostPathEnabled).
//
// Lifecycle: made by CoreWorker once its address is known; Track at submit,
// NoteUses and FillArgument for each submitted dependency, Forget when the
// reference counter frees the object.
//
// THREAD CONTRACT: thread-safe. NoteUses, FillArgument, Track and Forget do
// not block (they may run on the io thread). CreateGroup and DestroyGroup
// block on the group's members (never on the io thread).
//
//   TransferOwner owner(self, store, actors, peers);
//   owner.Track(return_ids, producer, "gloo");
//   std::vector<ObjectId> waiting = owner.NoteUses(deps, target, &warnings);
//   owner.FillArgument(ref, value, target, spec.add_args());
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/core/argument_resolver.h"
#include "ferry/core/object_ref.h"
#include "ferry/core/peer_messenger.h"
#include "ferry/core/rdt/actor_directory.h"
#include "ferry/object/memory_store.h"
#include "ferry/proto/ferry.pb.h"

namespace ferry::core::rdt {

// The transfers a task's arguments needed: the groups they were received in
// and the actors that sent them.
struct TaskTransfers {
  std::vector<std::string> groups;
  std::vector<ActorId> senders;
  ActorId receiver;  // the task's actor
  bool empty() const { return senders.empty(); }
  static TaskTransfers Of(const proto::TaskSpec& spec);
};

// A collective group as its creator (the owner that orchestrates transfers)
// sees it.
struct CollectiveGroup {
  std::string name;
  std::string backend;
  std::vector<ActorId> members;        // rank = index
  std::vector<std::string> addresses;  // the members' addresses when it was made
  // The members' hosts (HostId) when transfers between two members on one
  // host take the same-host path; empty when it is off for this group.
  std::vector<std::string> hosts;
};

// How the groups created from now on move bytes between two members on one
// host: "shm" (the receiver reads the producer's memory; default) or "tcp"
// (the backend's wire). FERRY_GLOO_SAME_HOST_PATH, read at each creation;
// InvalidArgument for another value.
StatusOr<bool> SameHostPathEnabled();

class TransferOwner {
 public:
  // `self` is this process (the owner of the refs it makes); `store` holds
  // its owned values. All must outlive the TransferOwner.
  TransferOwner(WorkerId self, object::MemoryStore& store, ActorDirectory& actors,
                PeerMessenger& peers);

  // The objects `ids`, returned by a task of `producer`, keep their tensors
  // there and move with `transport`.
  void Track(std::span<const ObjectId> ids, const ActorId& producer, const std::string& transport)
      FERRY_EXCLUDES(mu_);
  // Records that the owned RDT objects among `deps` go to `target`; the
  // first time one goes both to its producer and to another actor, appends
  // the mutability warning to `warnings` (if not null). Returns the RDT
  // dependencies whose value is not ready yet: the task waits for them.
  std::vector<ObjectId> NoteUses(std::span<const ObjectRef> deps, const ActorId& target,
                                 std::vector<std::string>* warnings) FERRY_EXCLUDES(mu_);
  // Writes the argument for the owned, ready value `value` of `id` headed to
  // `target`: the value itself and, for a healthy RDT value, the transfer
  // arranged as above. A transfer that cannot be arranged (no shared group,
  // producer dead) becomes an error value in the argument.
  void FillArgument(const ObjectId& id, const ValuePtr& value, const ActorId& target,
                    proto::TaskArg* arg) FERRY_EXCLUDES(mu_);
  // The object was freed.
  void Forget(const ObjectId& id) FERRY_EXCLUDES(mu_);
  // At submission of a method whose returns move with `transport`: a
  // two-sided transport needs `producer` in a group of that backend created
  // here (InvalidArgument naming create_collective_group otherwise, as Ray
  // checks at .remote()).
  Status CheckSubmission(const ActorId& producer, const std::string& transport) FERRY_EXCLUDES(mu_);
  // Number of RDT objects tracked.
  size_t NumTracked() FERRY_EXCLUDES(mu_);

  // Connects `actors` as group `name` (rank = position) of `backend`.
  // Blocks until all joined (FERRY_TRANSFER_TIMEOUT_S plus
  // FERRY_WORKER_START_TIMEOUT_S); a failed join makes every member leave.
  Status CreateGroup(const std::string& name, const std::string& backend,
                     const std::vector<ActorId>& actors) FERRY_EXCLUDES(mu_);
  // Makes the live members leave group `name`. NotFound if this process did
  // not create it; OK (nothing to do) for a group a member's death already
  // destroyed, so cleanup code need not race the failure.
  Status DestroyGroup(const std::string& name) FERRY_EXCLUDES(mu_);
  // `actor` died (its process, or its node; `cause` names it and says how,
  // for the errors of the transfers it fails): every group
  // created here with it as a member is destroyed, as after any system
  // error: the other members leave it and their pending transfers in it
  // fail with `cause` at once. Does not block.
  void OnActorDied(const ActorId& actor, const Status& cause) FERRY_EXCLUDES(mu_);
  // `actor` restarted: the tensors of the RDT objects it had returned were
  // in its old process, so each such ready object becomes an ObjectLostError
  // (kDataLoss naming `cause`). Objects whose task is still to run (a
  // retried one) are left alone: the new process returns them.
  void OnProducerRestarted(const ActorId& actor, const Status& cause) FERRY_EXCLUDES(mu_);
  // A transfer in each of `groups` failed with a system error `cause` (seen
  // by a task that received in them): they are destroyed as above.
  void OnTransferFailed(std::span<const std::string> groups, const Status& cause)
      FERRY_EXCLUDES(mu_);
  // True for the statuses a failed transfer gives a task (a transport error,
  // its timeout, a peer gone), as opposed to the user's own exception.
  static bool IsTransferFailure(const Status& status);
  // A task whose arguments needed `transfers` failed with `status`
  // (IsTransferFailure): destroys their groups and, when a sender died,
  // returns its death (Unavailable, naming the actor) for the task to report
  // instead of the transport's view of it; OK when every sender lives, or
  // at once when the receiver itself died (the task's error says so).
  // Waits up to `wait` for a death to become known. Blocks: not on the io
  // thread.
  Status ExplainFailure(const TaskTransfers& transfers, const Status& status, Clock::duration wait)
      FERRY_EXCLUDES(mu_);
  std::vector<CollectiveGroup> Groups() FERRY_EXCLUDES(mu_);

 private:
  // Forgets group `name` (it counts as destroyed by a failure) and tells its
  // members to leave it, failing their pending transfers with `cause`.
  void Lose(const std::string& name, const Status& cause) FERRY_EXCLUDES(mu_);
  Status ArrangeTransfer(const ObjectId& id, const ValuePtr& value, const ActorId& target,
                         proto::TaskArg* arg) FERRY_EXCLUDES(mu_);
  // A group created here that holds both actors and serves `transport`.
  struct Route {
    std::string group;
    int src_rank = -1;
    int dst_rank = -1;
    uint64_t tag = 0;
    bool same_host = false;  // both ranks on one host, the same-host path on
  };
  std::optional<Route> FindRoute(const std::string& transport, const ActorId& producer,
                                 const ActorId& target) FERRY_EXCLUDES(mu_);

  const WorkerId self_;
  object::MemoryStore& store_;
  ActorDirectory& actors_;
  PeerMessenger& peers_;
  // High half of every tag this owner makes; the low half counts transfers.
  const uint64_t tag_prefix_;

  struct RdtObject {
    ActorId producer;
    std::string transport;
    // Where the object has been passed so far: enough for the mutability
    // warning (constant size however often the ref is passed).
    bool sent_to_producer = false;
    bool sent_to_other = false;
    bool warned = false;
  };
  Mutex mu_;
  std::unordered_map<ObjectId, RdtObject> objects_ FERRY_GUARDED_BY(mu_);
  std::map<std::string, CollectiveGroup> groups_ FERRY_GUARDED_BY(mu_);
  // Groups destroyed by a member's death and not destroyed or re-created by
  // the user since.
  std::set<std::string> lost_groups_ FERRY_GUARDED_BY(mu_);
  uint64_t next_tag_ FERRY_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry::core::rdt
