// ActorLocator: what this process asks the Head about actors — an actor's
// state and address (waiting while it starts or restarts, and warning when
// that takes long), what became of one whose connection closed — and the
// dedicated connection a caller keeps to each actor. It is the
// ActorSubmitter's ActorConnector, and remembers the address each actor was
// last reached at (where its returns' bytes live).
//
// Thread contract: thread-safe. Every call but LastAddress may block on the
// Head (bounded by its deadline or the configured timeouts), so none of
// them may run on the io thread.
//
//   ActorLocator locator([&] { return HeadChannel(); },
//                        [&](const std::string& address, Deadline d) { return Dial(address, d); });
//   StatusOr<ActorConnection> c = locator.ConnectToActor(actor);
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "ferry/common/clock.h"
#include "ferry/common/id.h"
#include "ferry/common/status.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/core/actor_submitter.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/channel.h"

namespace ferry::core {

class ActorLocator : public ActorConnector {
 public:
  using ChannelPtr = std::shared_ptr<rpc::Channel>;
  // The channel to the Head.
  using HeadFn = std::function<StatusOr<ChannelPtr>()>;
  // A new channel of its own to `address` (an actor's worker).
  using DialFn = std::function<StatusOr<ChannelPtr>(const std::string& address, Deadline)>;

  ActorLocator(HeadFn head, DialFn dial) : head_(std::move(head)), dial_(std::move(dial)) {}

  StatusOr<proto::ActorInfo> GetActorInfo(const ActorId& actor, bool wait_until_settled,
                                          Deadline deadline);
  StatusOr<proto::ActorInfo> GetActorInfo(const proto::GetActorInfo& request, Deadline deadline);
  // The address of `actor` when it is alive; Unavailable naming the cause
  // when it is not.
  StatusOr<std::string> Address(const ActorId& actor, bool wait_until_started, Deadline deadline);
  // The address `actor` was last connected at here ("" if never).
  std::string LastAddress(const ActorId& actor) FERRY_EXCLUDES(mu_);

  // ActorConnector.
  StatusOr<ActorConnection> ConnectToActor(const ActorId& id) override FERRY_EXCLUDES(mu_);
  ActorFate AwaitFate(const ActorId& id, int incarnation) override;

 private:
  const HeadFn head_;
  const DialFn dial_;
  Mutex mu_;
  std::unordered_map<ActorId, std::string> addresses_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::core
