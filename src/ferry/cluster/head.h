// Head: the cluster's control service — actor registry, worker spawning and
// the key-value table. In the default embedded mode it lives inside the
// driver and serves on the driver's own socket (its handlers are registered
// on the driver CoreWorker's dispatcher); callers reach it over the same
// protocol either way.
//
// Actor lifecycle: CREATE_ACTOR records the actor PENDING and spawns its
// worker; the worker REGISTERs (getting its creation task), builds the actor
// and reports ACTOR_READY -> ALIVE (or DEAD with the constructor's error).
// The worker's exit (seen on its pidfd), KILL_ACTOR, or a start timeout make
// it DEAD with a cause that callers turn into ActorDiedError.
//
// Thread contract: handlers run on the io thread; the tables are guarded by
// mu_ so Shutdown() and the accessors may be called from any thread.
// Responders are always answered outside the lock.
//
//   Head head(core.io_loop(), core.dispatcher(), {.token = token});
//   FERRY_RETURN_IF_ERROR(core.Start());
//   head.SetAddress(core.address());
//   ...
//   head.Shutdown();  // kills and reaps every worker
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ferry/cluster/kv_store.h"
#include "ferry/cluster/process_spawner.h"
#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/dispatcher.h"
#include "ferry/rpc/io_loop.h"

namespace ferry::cluster {

struct HeadOptions {
  std::string token;
  std::string session;
};

class Head {
 public:
  // Registers the Head's handlers on `dispatcher` (before it serves).
  Head(rpc::IoLoop& loop, rpc::Dispatcher& dispatcher, HeadOptions options);
  ~Head();
  Head(const Head&) = delete;
  Head& operator=(const Head&) = delete;

  // Where spawned workers connect to the Head.
  void SetAddress(const std::string& address);
  // SIGKILLs every worker and waits until each is reaped. Idempotent.
  void Shutdown();

  size_t NumLiveWorkers();
  std::vector<int> WorkerPids();
  KvStore& kv() { return kv_; }

 private:
  struct Actor;

  void HandleCreateActor(std::string_view payload, rpc::Responder responder);
  void HandleRegisterWorker(std::string_view payload, rpc::Responder responder);
  void HandleActorReady(std::string_view payload, rpc::Responder responder);
  void HandleGetActorInfo(std::string_view payload, rpc::Responder responder);
  void HandleKillActor(std::string_view payload, rpc::Responder responder);
  void HandleKvPut(std::string_view payload, rpc::Responder responder);
  void HandleKvGet(std::string_view payload, rpc::Responder responder);
  void HandleKvDel(std::string_view payload, rpc::Responder responder);

  void WatchExit(const std::shared_ptr<Actor>& actor);
  void OnWorkerExit(const std::shared_ptr<Actor>& actor);
  // Marks DEAD (first cause wins) and answers settle waiters.
  void MarkDead(const std::shared_ptr<Actor>& actor, const std::string& cause);
  void AnswerSettled(std::vector<rpc::Responder> waiters, const proto::ActorInfo& info);
  std::shared_ptr<Actor> Find(const std::string& actor_id);

  rpc::IoLoop& loop_;
  const HeadOptions options_;
  ProcessSpawner spawner_;
  KvStore kv_;

  Mutex mu_;
  std::string address_ FERRY_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::shared_ptr<Actor>> actors_ FERRY_GUARDED_BY(mu_);
  std::map<std::string, std::string> names_ FERRY_GUARDED_BY(mu_);
  bool shut_down_ FERRY_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::cluster
