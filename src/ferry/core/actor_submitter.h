// ActorSubmitter: the caller side of actor tasks.
//
// Per actor it keeps the connection, the tasks not sent yet (in submission
// order) and the next sequence number. The first task to an actor triggers
// one background connect (through an ActorConnector: ask the Head where the
// actor lives, then connect); tasks submitted meanwhile queue in order and
// are sent when the channel is up. A task whose spec is not ready yet (its
// RDT arguments wait for their producer) reserves its place: the tasks
// behind it wait here until it is filled in. Sequence numbers are given
// when a task is sent, from 0 for each connection, so a restarted actor's
// new process counts from 0 as well.
//
// When the channel closes, the Head says what became of the actor (at once
// when it saw the process end, within 2 s otherwise: ActorLocator::AwaitFate):
// * dead: every in-flight and queued task, and every later one, completes
//   with an error value carrying the cause (kUnavailable -> ActorDiedError);
// * restarting: in-flight tasks whose max_retries allow are re-sent to the
//   new process, in their order and before the queued ones; the others
//   fail with the cause. The submitter reconnects once the new process is
//   ready.
// A reply that is a retryable application error (the worker matched the
// task's retry_exceptions) runs the task again while max_retries allow.
//
// Thread contract: thread-safe. `done` callbacks fire exactly once, on the io
// thread or the background queue, never under the submitter's locks; so
// does `on_restart`, before any task is re-sent to the restarted actor.
//
//   ActorSubmitter s(&connector, &background, on_restart);
//   s.Submit(actor_id, std::move(spec), [](proto::PushTaskReply r) { ... });
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>

#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/common/work_queue.h"
#include "ferry/core/timeline.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/channel.h"

namespace ferry::core {

// A connection to an actor, and whether the actor runs on another host
// (then values in this host's shared memory travel inline in its tasks).
struct ActorConnection {
  std::shared_ptr<rpc::Channel> channel;
  bool another_host = false;
  int incarnation = 0;       // the Head's restart count of the process reached
  bool may_restart = false;  // its max_restarts is not 0
};

// What became of an actor whose connection closed.
struct ActorFate {
  bool restarting = false;  // a new process replaces the old one
  Status cause;             // why the old process ended; Ok when unknown
};

// How the submitter reaches actors. Both calls may block; they run on the
// submitter's background queue.
class ActorConnector {
 public:
  virtual ~ActorConnector() = default;
  // Waits until the actor has started (or failed) and connects to it.
  virtual StatusOr<ActorConnection> ConnectToActor(const ActorId& id) = 0;
  // Waits (bounded) until the Head knows what became of the actor's
  // process of restart count `incarnation`, whose connection closed.
  virtual ActorFate AwaitFate(const ActorId& id, int incarnation) = 0;
};

class ActorSubmitter {
 public:
  using DoneFn = std::function<void(proto::PushTaskReply)>;
  // Called when `actor` restarts (with why its old process ended).
  using RestartFn = std::function<void(const ActorId& actor, const Status& cause)>;

  // `timeline` (may be null) counts the calls and records each from
  // submission to reply.
  ActorSubmitter(ActorConnector* connector, WorkQueue* background, RestartFn on_restart = nullptr,
                 Timeline* timeline = nullptr)
      : connector_(connector),
        background_(background),
        on_restart_(std::move(on_restart)),
        timeline_(timeline) {}

  // Sends the task (or queues it until the actor is reachable and every
  // task before it was sent). `done` receives the reply or error values.
  void Submit(const ActorId& actor, proto::TaskSpec spec, DoneFn done);

  // Reserves the next place in `actor`'s order for a task whose spec is
  // not ready yet; later tasks wait behind it. The returned ticket must go
  // to SubmitReserved exactly once.
  uint64_t Reserve(const ActorId& actor);
  // Fills in the place reserved with `ticket`.
  void SubmitReserved(const ActorId& actor, uint64_t ticket, proto::TaskSpec spec, DoneFn done);

  // Records that `actor` is gone (e.g. after ferry.kill); fails queued tasks.
  void MarkDead(const ActorId& actor, Status cause);

  // The Head says `actor` restarts as incarnation `incarnation`: the
  // connection to an older process is dropped (the restart then proceeds as
  // when the connection closes by itself).
  void OnRestarting(const ActorId& actor, int incarnation);

  // True (and the cause) once `actor` is known to be dead here.
  bool IsDead(const ActorId& actor, Status* cause);

  // Fails everything queued and closes every actor channel.
  void Shutdown();

 private:
  // `done`, wrapped to record the call in the timeline when recording.
  DoneFn Recorded(const ActorId& actor, const proto::TaskSpec& spec, DoneFn done);
  struct Pending {
    proto::TaskSpec spec;
    DoneFn done;
    bool ready = true;        // false: a reserved place, spec not filled in yet
    uint64_t ticket = 0;      // the reservation, when there is one
    uint64_t connection = 0;  // Actor::connection when it was sent
  };
  struct Actor {
    enum class State { kNew, kConnecting, kAlive, kDead };
    Mutex mu;
    State state FERRY_GUARDED_BY(mu) = State::kNew;
    std::shared_ptr<rpc::Channel> channel FERRY_GUARDED_BY(mu);
    bool another_host FERRY_GUARDED_BY(mu) = false;
    int incarnation FERRY_GUARDED_BY(mu) = 0;  // of the process `channel` reaches
    bool may_restart FERRY_GUARDED_BY(mu) = false;
    uint64_t connection FERRY_GUARDED_BY(mu) = 0;    // counts this actor's restarts seen here
    std::deque<Pending> queue FERRY_GUARDED_BY(mu);  // not sent yet, in order
    // Sent on the current connection, which closed; waiting for the actor's
    // fate to be retried or failed.
    std::vector<Pending> lost FERRY_GUARDED_BY(mu);
    uint64_t next_seq FERRY_GUARDED_BY(mu) = 0;  // of the current connection
    uint64_t next_ticket FERRY_GUARDED_BY(mu) = 1;
    Status death_cause FERRY_GUARDED_BY(mu);
  };

  std::shared_ptr<Actor> GetActor(const ActorId& id);
  void Enqueue(const ActorId& id, const std::shared_ptr<Actor>& actor, Pending pending);
  void Connect(const ActorId& id, std::shared_ptr<Actor> actor);
  void OnChannelClosed(const ActorId& id, std::shared_ptr<Actor> actor, uint64_t connection);
  // The actor restarts: retries what may be retried, fails the rest, reconnects.
  void Restart(const ActorId& id, const std::shared_ptr<Actor>& actor, uint64_t connection,
               const Status& cause);
  // Sends the ready front of the queue, numbering each task.
  void FlushLocked(const ActorId& id, const std::shared_ptr<Actor>& actor)
      FERRY_REQUIRES(actor->mu);
  // Sends over the actor's channel; the reply (or failure) completes
  // `pending`. For an actor on another host, argument values in shared
  // memory go inline. False when the channel turned out closed: `pending`
  // is back at the queue's front, unsent.
  bool SendLocked(const ActorId& id, const std::shared_ptr<Actor>& actor, Pending pending)
      FERRY_REQUIRES(actor->mu);
  void OnReply(const ActorId& id, const std::shared_ptr<Actor>& actor, Pending pending,
               Status status, std::string_view payload);
  // A task sent on a connection that closed.
  void OnLost(const ActorId& id, const std::shared_ptr<Actor>& actor, Pending pending,
              const Status& status);
  static bool MayRetry(const proto::TaskSpec& spec);
  static void Fail(Pending& pending, const Status& cause);

  ActorConnector* const connector_;
  WorkQueue* const background_;
  const RestartFn on_restart_;
  Timeline* const timeline_;  // may be null

  Mutex mu_;
  std::unordered_map<ActorId, std::shared_ptr<Actor>> actors_ FERRY_GUARDED_BY(mu_);
};

// An error value per return of `spec` (one for a creation task).
proto::PushTaskReply ErrorReplyFor(const proto::TaskSpec& spec, const Status& cause);

}  // namespace ferry::core
