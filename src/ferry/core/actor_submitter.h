// ActorSubmitter: the caller side of actor tasks.
//
// Per actor it keeps the connection, the next sequence number and the tasks
// that wait for the actor to start. The first task to an actor triggers one
// background connect (through an ActorConnector: ask the Head where the actor
// lives, then connect); tasks submitted meanwhile queue in order and are sent
// when the channel is up. When the channel closes the actor is dead: every
// in-flight and queued task, and every later one, completes with an error
// value carrying the cause (kUnavailable -> ActorDiedError).
//
// Thread contract: thread-safe. `done` callbacks fire exactly once, on the io
// thread or the background queue, never under the submitter's locks.
//
//   ActorSubmitter s(&connector, &background);
//   s.Submit(actor_id, std::move(spec), [](proto::PushTaskReply r) { ... });
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>

#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/common/work_queue.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/channel.h"

namespace ferry::core {

// A connection to an actor, and whether the actor runs on another host
// (then values in this host's shared memory travel inline in its tasks).
struct ActorConnection {
  std::shared_ptr<rpc::Channel> channel;
  bool another_host = false;
};

// How the submitter reaches actors. Both calls may block; they run on the
// submitter's background queue.
class ActorConnector {
 public:
  virtual ~ActorConnector() = default;
  // Waits until the actor has started (or failed) and connects to it.
  virtual StatusOr<ActorConnection> ConnectToActor(const ActorId& id) = 0;
  // Why the actor is gone, as the Head recorded it (best effort).
  virtual Status DeathCause(const ActorId& id) = 0;
};

class ActorSubmitter {
 public:
  using DoneFn = std::function<void(proto::PushTaskReply)>;

  ActorSubmitter(ActorConnector* connector, WorkQueue* background)
      : connector_(connector), background_(background) {}

  // Assigns the spec's sequence number and sends it (or queues it until the
  // actor is reachable). `done` receives the reply or error values.
  void Submit(const ActorId& actor, proto::TaskSpec spec, DoneFn done);

  // Reserves the next sequence number of `actor`; the task that holds it
  // must later go through SubmitReserved (the actor waits for it in order).
  uint64_t ReserveSequence(const ActorId& actor);
  // Submit() for a spec whose sequence number was reserved.
  void SubmitReserved(const ActorId& actor, proto::TaskSpec spec, DoneFn done);

  // Records that `actor` is gone (e.g. after ferry.kill); fails queued tasks.
  void MarkDead(const ActorId& actor, Status cause);

  // True (and the cause) once `actor` is known to be dead here.
  bool IsDead(const ActorId& actor, Status* cause);

  // Fails everything queued and closes every actor channel.
  void Shutdown();

 private:
  struct Pending {
    proto::TaskSpec spec;
    DoneFn done;
  };
  struct Actor {
    enum class State { kNew, kConnecting, kAlive, kDead };
    Mutex mu;
    State state FERRY_GUARDED_BY(mu) = State::kNew;
    std::shared_ptr<rpc::Channel> channel FERRY_GUARDED_BY(mu);
    bool another_host FERRY_GUARDED_BY(mu) = false;
    std::deque<Pending> queue FERRY_GUARDED_BY(mu);
    uint64_t next_seq FERRY_GUARDED_BY(mu) = 0;
    Status death_cause FERRY_GUARDED_BY(mu);
  };

  std::shared_ptr<Actor> GetActor(const ActorId& id);
  void SubmitImpl(const ActorId& id, proto::TaskSpec spec, DoneFn done, bool assign_sequence);
  void Connect(const ActorId& id, std::shared_ptr<Actor> actor);
  void OnChannelClosed(const ActorId& id, std::shared_ptr<Actor> actor);
  // Sends over `channel`; the reply (or failure) completes `pending`. For an
  // actor on another host, argument values in shared memory go inline.
  static void Send(const std::shared_ptr<rpc::Channel>& channel, bool another_host,
                   Pending pending);
  static void Fail(Pending& pending, const Status& cause);

  ActorConnector* const connector_;
  WorkQueue* const background_;

  Mutex mu_;
  std::unordered_map<ActorId, std::shared_ptr<Actor>> actors_ FERRY_GUARDED_BY(mu_);
};

// An error value per return of `spec` (one for a creation task).
proto::PushTaskReply ErrorReplyFor(const proto::TaskSpec& spec, const Status& cause);

}  // namespace ferry::core
