// ActorSubmitter against "actor processes" that are real channels
// (socketpairs) served by a test dispatcher, and a fake connector that plays
// the Head: which process is current and what became of a closed one.
#include "ferry/core/actor_submitter.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>

#include "ferry/core/error_value.h"
#include "ferry/rpc/test_util.h"

namespace ferry::core {
namespace {

using rpc::testing::Waiter;

// What one actor process received.
struct Received {
  std::string method;
  uint64_t seq = 0;
  int attempt = 0;
  rpc::Responder responder;
};

// One actor process: its end of the channel and what it was sent.
struct FakeProcess {
  std::shared_ptr<rpc::Channel> actor_end;
  std::mutex mu;
  std::vector<Received> tasks;

  size_t Count() {
    std::lock_guard<std::mutex> lock(mu);
    return tasks.size();
  }
  std::vector<std::string> Summary() {  // "method@seq#attempt", in arrival order
    std::lock_guard<std::mutex> lock(mu);
    std::vector<std::string> out;
    for (auto& t : tasks) {
      out.push_back(t.method + "@" + std::to_string(t.seq) + "#" + std::to_string(t.attempt));
    }
    return out;
  }
  void Reply(size_t i, const proto::ObjectValueProto& value) {
    rpc::Responder r;
    {
      std::lock_guard<std::mutex> lock(mu);
      r = std::move(tasks.at(i).responder);
    }
    proto::PushTaskReply reply;
    *reply.add_returns() = value;
    r.Reply(reply);
  }
};

proto::ObjectValueProto Raw(const std::string& text) {
  proto::ObjectValueProto v;
  v.set_format("raw");
  v.set_inline_data(text);
  return v;
}

class FakeConnector : public ActorConnector {
 public:
  FakeConnector(rpc::IoLoop& loop, Waiter& waiter) : loop_(loop), waiter_(waiter) {}

  StatusOr<ActorConnection> ConnectToActor(const ActorId&) override {
    auto process = std::make_shared<FakeProcess>();
    auto dispatcher = std::make_shared<rpc::Dispatcher>();
    Waiter* waiter = &waiter_;
    // A weak pointer: the process holds its channel (and the responders),
    // whose dispatcher holds this handler.
    std::weak_ptr<FakeProcess> weak = process;
    dispatcher->Register(proto::PUSH_TASK,
                         [weak, waiter](const std::shared_ptr<rpc::Channel>&,
                                        std::string_view payload, rpc::Responder r) {
                           auto process = weak.lock();
                           if (!process) return;
                           proto::TaskSpec spec;
                           spec.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
                           {
                             std::lock_guard<std::mutex> lock(process->mu);
                             process->tasks.push_back({spec.method(), spec.sequence_number(),
                                                       spec.attempt(), std::move(r)});
                           }
                           waiter->Notify();
                         });
    auto pair = rpc::testing::MakePair(loop_, std::make_shared<rpc::Dispatcher>(), dispatcher);
    process->actor_end = pair.b;
    ActorConnection connection;
    connection.channel = pair.a;
    {
      std::lock_guard<std::mutex> lock(mu_);
      connection.incarnation = static_cast<int>(processes_.size());
      connection.may_restart = may_restart_;
      processes_.push_back(process);
    }
    waiter_.Notify();
    return connection;
  }

  ActorFate AwaitFate(const ActorId&, int incarnation) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      fate_asked_.push_back(incarnation);
    }
    waiter_.Notify();
    std::unique_lock<std::mutex> lock(mu_);
    fate_cv_.wait_for(lock, rpc::testing::kWait, [&] { return !hold_fate_; });
    return fate_;
  }
  // AwaitFate blocks until ReleaseFate (the Head has not decided yet).
  void HoldFate() {
    std::lock_guard<std::mutex> lock(mu_);
    hold_fate_ = true;
  }
  void ReleaseFate() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_fate_ = false;
    }
    fate_cv_.notify_all();
  }

  std::shared_ptr<FakeProcess> Process(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return i < processes_.size() ? processes_[i] : nullptr;
  }
  size_t NumProcesses() {
    std::lock_guard<std::mutex> lock(mu_);
    return processes_.size();
  }
  void SetFate(ActorFate fate) {
    std::lock_guard<std::mutex> lock(mu_);
    fate_ = std::move(fate);
  }
  void SetMayRestart(bool may) {
    std::lock_guard<std::mutex> lock(mu_);
    may_restart_ = may;
  }
  size_t FateAsked() {
    std::lock_guard<std::mutex> lock(mu_);
    return fate_asked_.size();
  }

 private:
  rpc::IoLoop& loop_;
  Waiter& waiter_;
  std::mutex mu_;
  std::condition_variable fate_cv_;
  bool hold_fate_ = false;
  std::vector<std::shared_ptr<FakeProcess>> processes_;
  ActorFate fate_;
  bool may_restart_ = true;
  std::vector<int> fate_asked_;
};

class ActorSubmitterTest : public ::testing::Test {
 protected:
  void SetUp() override { loop_.Start(); }
  void TearDown() override {
    submitter_.Shutdown();
    // Closing a channel runs its close callback on the io thread, which
    // posts to the background queue: stop the loop before the queue goes.
    loop_.Stop();
    loop_.Join();
    background_.reset();
  }

  proto::TaskSpec Spec(const std::string& method, int max_retries = 0) {
    proto::TaskSpec spec;
    spec.set_method(method);
    spec.add_return_ids(ObjectId::Random().Binary());
    spec.set_max_retries(max_retries);
    return spec;
  }
  // Submits; the reply's first return lands in results_[method].
  void Submit(const std::string& method, int max_retries = 0) {
    submitter_.Submit(actor_, Spec(method, max_retries), Recorder(method));
  }
  ActorSubmitter::DoneFn Recorder(const std::string& method) {
    return [this, method](proto::PushTaskReply reply) {
      {
        std::lock_guard<std::mutex> lock(waiter_.mu());
        results_[method] = reply.returns(0);
      }
      waiter_.Notify();
    };
  }
  bool WaitResult(const std::string& method) {
    return waiter_.WaitFor([&] { return results_.count(method) > 0; });
  }
  proto::ObjectValueProto Result(const std::string& method) {
    std::lock_guard<std::mutex> lock(waiter_.mu());
    return results_.at(method);
  }
  bool WaitTasks(size_t process, size_t n) {
    return waiter_.WaitFor([&] {
      auto p = connector_.Process(process);
      return p && p->Count() >= n;
    });
  }

  rpc::IoLoop loop_{"submitter-test-io"};
  Waiter waiter_;
  FakeConnector connector_{loop_, waiter_};
  std::unique_ptr<WorkQueue> background_ = std::make_unique<WorkQueue>("submitter-test-bg");
  std::mutex restarted_mu_;
  int restarted_ = 0;
  Timeline timeline_{16};
  ActorSubmitter submitter_{&connector_, background_.get(),
                            [this](const ActorId&, const Status&) {
                              std::lock_guard<std::mutex> lock(restarted_mu_);
                              restarted_++;
                            },
                            &timeline_};
  ActorId actor_ = ActorId::Random();
  std::map<std::string, proto::ObjectValueProto> results_;  // guarded by waiter_.mu()
};

TEST_F(ActorSubmitterTest, RestartResendsRetriableCallsInOrderNumberedFromZero) {
  Submit("a", /*max_retries=*/1);
  Submit("b", /*max_retries=*/0);
  Submit("c", /*max_retries=*/-1);
  ASSERT_TRUE(WaitTasks(0, 3));
  EXPECT_EQ(connector_.Process(0)->Summary(),
            (std::vector<std::string>{"a@0#0", "b@1#0", "c@2#0"}));

  connector_.SetFate({.restarting = true, .cause = Status::Unavailable("it crashed")});
  connector_.Process(0)->actor_end->Close();  // the old process dies

  // b may not be retried: it fails with the cause. a and c go to the new
  // process first, in order, numbered from 0; a call made now follows.
  ASSERT_TRUE(WaitResult("b"));
  Status b = ValueStatus(Result("b"));
  EXPECT_EQ(b.code(), StatusCode::kUnavailable);
  EXPECT_NE(b.message().find("before finishing b: it crashed"), std::string::npos) << b;
  Submit("d");
  ASSERT_TRUE(WaitTasks(1, 3));
  EXPECT_EQ(connector_.Process(1)->Summary(),
            (std::vector<std::string>{"a@0#1", "c@1#1", "d@2#0"}));
  {
    std::lock_guard<std::mutex> lock(restarted_mu_);
    EXPECT_EQ(restarted_, 1);
  }
  connector_.Process(1)->Reply(0, Raw("A"));
  ASSERT_TRUE(WaitResult("a"));
  EXPECT_EQ(Result("a").inline_data(), "A");
}

TEST_F(ActorSubmitterTest, DeathFailsInFlightQueuedAndLaterCallsWithTheCause) {
  Submit("a", /*max_retries=*/3);
  ASSERT_TRUE(WaitTasks(0, 1));
  connector_.SetFate({.restarting = false, .cause = Status::Unavailable("out of restarts")});
  connector_.Process(0)->actor_end->Close();
  ASSERT_TRUE(WaitResult("a"));
  EXPECT_NE(ValueStatus(Result("a")).message().find("out of restarts"), std::string::npos);
  Submit("later");
  ASSERT_TRUE(WaitResult("later"));
  EXPECT_EQ(ValueStatus(Result("later")).message(), "out of restarts");
  EXPECT_EQ(connector_.NumProcesses(), 1u);
}

TEST_F(ActorSubmitterTest, AnActorThatCannotRestartFailsCallsWithTheHeadsCause) {
  connector_.SetMayRestart(false);
  connector_.HoldFate();
  Submit("a", /*max_retries=*/-1);
  ASSERT_TRUE(WaitTasks(0, 1));
  connector_.Process(0)->actor_end->Close();
  ASSERT_TRUE(waiter_.WaitFor([&] { return connector_.FateAsked() == 1; }));
  // How the process ended (and what it printed last) is the Head's to say.
  connector_.SetFate({.restarting = false,
                      .cause = Status::Unavailable("exited with code 3; its last output: oom")});
  connector_.ReleaseFate();
  ASSERT_TRUE(WaitResult("a"));
  Status s = ValueStatus(Result("a"));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("its last output: oom"), std::string::npos) << s;
}

TEST_F(ActorSubmitterTest, WhenTheHeadCannotSayTheCallsFailWithTheConnectionsCause) {
  connector_.SetMayRestart(false);
  Submit("a", /*max_retries=*/-1);
  ASSERT_TRUE(WaitTasks(0, 1));
  connector_.Process(0)->actor_end->Close();  // the fake's fate: unknown
  ASSERT_TRUE(WaitResult("a"));
  EXPECT_EQ(ValueStatus(Result("a")).code(), StatusCode::kUnavailable);
}

TEST_F(ActorSubmitterTest, ARestartableActorsCallsWaitForItsFate) {
  connector_.HoldFate();
  Submit("a", /*max_retries=*/1);
  Submit("b", /*max_retries=*/0);
  ASSERT_TRUE(WaitTasks(0, 2));
  connector_.Process(0)->actor_end->Close();
  ASSERT_TRUE(waiter_.WaitFor([&] { return connector_.FateAsked() == 1; }));
  {
    std::lock_guard<std::mutex> lock(waiter_.mu());
    EXPECT_TRUE(results_.empty()) << "b fails only once the restart is known";
  }
  connector_.SetFate({.restarting = true, .cause = Status::Unavailable("it crashed")});
  connector_.ReleaseFate();
  ASSERT_TRUE(WaitResult("b"));
  ASSERT_TRUE(WaitTasks(1, 1));
  EXPECT_EQ(connector_.Process(1)->Summary(), (std::vector<std::string>{"a@0#1"}));
}

TEST_F(ActorSubmitterTest, RecordsEachCallFromSubmissionToReplyInTheTimeline) {
  proto::TaskSpec spec = Spec("step");
  const TaskId task = TaskId::Random();
  spec.set_task_id(task.Binary());
  submitter_.Submit(actor_, spec, Recorder("step"));
  ASSERT_TRUE(WaitTasks(0, 1));
  EXPECT_TRUE(timeline_.Calls().empty()) << "recorded when answered";
  connector_.Process(0)->Reply(0, Raw("S"));
  ASSERT_TRUE(WaitResult("step"));
  std::vector<CallSpan> calls = timeline_.Calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].task_id, task);
  EXPECT_EQ(calls[0].method, "step");
  EXPECT_EQ(calls[0].actor, actor_);
  EXPECT_GT(calls[0].submitted_us, 0);
  EXPECT_LE(calls[0].submitted_us, calls[0].replied_us);
}

TEST_F(ActorSubmitterTest, AReservedPlaceHoldsTheCallsBehindIt) {
  uint64_t ticket = submitter_.Reserve(actor_);
  Submit("after");
  ASSERT_TRUE(waiter_.WaitFor([&] { return connector_.NumProcesses() == 1; }));
  // "after" waits for the reserved call (the connection is up).
  Submit("probe-not-sent-either");
  EXPECT_EQ(connector_.Process(0)->Count(), 0u);
  submitter_.SubmitReserved(actor_, ticket, Spec("reserved"), Recorder("reserved"));
  ASSERT_TRUE(WaitTasks(0, 3));
  EXPECT_EQ(connector_.Process(0)->Summary(),
            (std::vector<std::string>{"reserved@0#0", "after@1#0", "probe-not-sent-either@2#0"}));
}

TEST_F(ActorSubmitterTest, AReservedPlaceOfADeadActorFailsWhenFilledIn) {
  uint64_t ticket = submitter_.Reserve(actor_);
  submitter_.MarkDead(actor_, Status::Unavailable("killed"));
  submitter_.SubmitReserved(actor_, ticket, Spec("reserved"), Recorder("reserved"));
  ASSERT_TRUE(WaitResult("reserved"));
  EXPECT_EQ(ValueStatus(Result("reserved")).message(), "killed");
}

TEST_F(ActorSubmitterTest, ARetryableErrorRunsTheCallAgainWithinItsRetries) {
  proto::ObjectValueProto retryable = MakeErrorValue(Status(StatusCode::kTaskError, "flaky"));
  retryable.set_retryable(true);

  Submit("twice", /*max_retries=*/1);
  ASSERT_TRUE(WaitTasks(0, 1));
  connector_.Process(0)->Reply(0, retryable);
  ASSERT_TRUE(WaitTasks(0, 2));
  EXPECT_EQ(connector_.Process(0)->Summary()[1], "twice@1#1");
  connector_.Process(0)->Reply(1, retryable);  // retries spent: the error stands
  ASSERT_TRUE(WaitResult("twice"));
  EXPECT_EQ(ValueStatus(Result("twice")).message(), "flaky");

  Submit("once");  // max_retries 0: a retryable mark changes nothing
  ASSERT_TRUE(WaitTasks(0, 3));
  connector_.Process(0)->Reply(2, retryable);
  ASSERT_TRUE(WaitResult("once"));
  EXPECT_EQ(connector_.Process(0)->Count(), 3u);
}

TEST_F(ActorSubmitterTest, TheHeadSayingRestartingDropsTheOldConnection) {
  Submit("a", /*max_retries=*/1);
  ASSERT_TRUE(WaitTasks(0, 1));
  connector_.SetFate({.restarting = true, .cause = Status::Unavailable("node died")});
  submitter_.OnRestarting(actor_, /*incarnation=*/0);  // not newer: ignored
  submitter_.OnRestarting(actor_, /*incarnation=*/1);
  ASSERT_TRUE(WaitTasks(1, 1));
  EXPECT_EQ(connector_.Process(1)->Summary(), (std::vector<std::string>{"a@0#1"}));
}

}  // namespace
}  // namespace ferry::core
