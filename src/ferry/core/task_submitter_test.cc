#include "ferry/core/task_submitter.h"

#include <gtest/gtest.h>

#include "ferry/core/error_value.h"

namespace ferry::core {
namespace {

// Answers the ports by hand: the test decides each lease and each reply.
struct FakePorts {
  std::vector<std::function<void(ValuePtr)>> dep_waits;
  std::vector<TaskSubmitter::LeaseReplyFn> leases;
  std::vector<proto::ReturnWorker> returned;
  std::vector<std::pair<proto::TaskSpec, TaskSubmitter::ReplyFn>> pushed;

  TaskSubmitter::Ports Ports() {
    return {
        [this](const std::vector<ObjectRef>&, std::function<void(ValuePtr)> ready) {
          dep_waits.push_back(std::move(ready));
        },
        [this](const proto::LeaseWorker&, TaskSubmitter::LeaseReplyFn reply) {
          leases.push_back(std::move(reply));
        },
        [this](const proto::ReturnWorker& r) { returned.push_back(r); },
        [this](const ActorId&, proto::TaskSpec spec, const std::vector<ObjectRef>&,
               TaskSubmitter::ReplyFn reply) {
          pushed.emplace_back(std::move(spec), std::move(reply));
        },
    };
  }
  // Grants the oldest waiting lease on a new worker; returns its id.
  ActorId Grant() {
    ActorId worker = ActorId::Random();
    proto::LeaseWorkerReply reply;
    reply.set_lease_id("lease-" + std::to_string(leases.size()));
    reply.set_actor_id(worker.Binary());
    auto fn = std::move(leases.front());
    leases.erase(leases.begin());
    fn(reply);
    return worker;
  }
  void Reply(const proto::ObjectValueProto& value) {
    auto fn = std::move(pushed.front().second);
    pushed.erase(pushed.begin());
    proto::PushTaskReply reply;
    *reply.add_returns() = value;
    fn(reply);
  }
};

proto::TaskSpec Spec(int max_retries) {
  proto::TaskSpec spec;
  spec.set_method("f");
  spec.add_return_ids("r");
  spec.set_max_retries(max_retries);
  return spec;
}

proto::ObjectValueProto Value(const std::string& bytes) {
  proto::ObjectValueProto v;
  v.set_format("raw");
  v.set_inline_data(bytes);
  return v;
}

struct Done {
  int calls = 0;
  ActorId worker;
  proto::PushTaskReply reply;
  TaskSubmitter::DoneFn Fn() {
    return [this](const ActorId& w, proto::PushTaskReply r) {
      ++calls;
      worker = w;
      reply = std::move(r);
    };
  }
};

ObjectRef Ref() { return ObjectRef{ObjectId::Random(), "unix:@x", WorkerId::Random()}; }

TEST(TaskSubmitterTest, LeasesOnlyOnceTheArgumentsAreReadyAndReturnsTheLeaseAfterTheReply) {
  FakePorts ports;
  TaskSubmitter submitter(ports.Ports());
  Done done;
  submitter.Submit(Spec(0), {Ref()}, proto::LeaseWorker(), done.Fn());
  EXPECT_TRUE(ports.leases.empty()) << "no resources held while an argument is not ready";
  ports.dep_waits[0](nullptr);
  ASSERT_EQ(ports.leases.size(), 1u);
  ActorId worker = ports.Grant();
  ASSERT_EQ(ports.pushed.size(), 1u);
  EXPECT_EQ(ports.pushed[0].first.actor_id(), worker.Binary());
  ports.Reply(Value("42"));
  ASSERT_EQ(done.calls, 1);
  EXPECT_EQ(done.worker, worker);
  EXPECT_EQ(done.reply.returns(0).inline_data(), "42");
  ASSERT_EQ(ports.returned.size(), 1u);
  EXPECT_EQ(ports.returned[0].lease_id(), "lease-1");
  EXPECT_FALSE(ports.returned[0].worker_failed());
}

TEST(TaskSubmitterTest, AnArgumentThatIsAnErrorFailsTheTaskWithoutALease) {
  FakePorts ports;
  TaskSubmitter submitter(ports.Ports());
  Done done;
  submitter.Submit(Spec(3), {Ref()}, proto::LeaseWorker(), done.Fn());
  ports.dep_waits[0](std::make_shared<proto::ObjectValueProto>(
      MakeErrorValue(Status::TaskError("the producer raised"))));
  EXPECT_TRUE(ports.leases.empty());
  ASSERT_EQ(done.calls, 1);
  EXPECT_EQ(ValueStatus(done.reply.returns(0)).code(), StatusCode::kTaskError);
}

TEST(TaskSubmitterTest, AWorkerThatDiesIsRetiredAndTheTaskRetriedOnAnotherUntilRetriesAreSpent) {
  FakePorts ports;
  TaskSubmitter submitter(ports.Ports());
  Done done;
  submitter.Submit(Spec(1), {}, proto::LeaseWorker(), done.Fn());
  ports.Grant();
  ports.Reply(MakeErrorValue(Status::Unavailable("worker process exited with code 9")));
  ASSERT_EQ(ports.returned.size(), 1u);
  EXPECT_TRUE(ports.returned[0].worker_failed());
  ASSERT_EQ(ports.leases.size(), 1u) << "one retry";
  ports.Grant();
  EXPECT_EQ(ports.pushed[0].first.attempt(), 1);
  ports.Reply(MakeErrorValue(Status::Unavailable("worker process exited with code 9")));
  ASSERT_EQ(done.calls, 1);
  Status s = ValueStatus(done.reply.returns(0));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("running task f died (attempts: 2)"), std::string::npos)
      << s.message();
  EXPECT_TRUE(ports.leases.empty());
}

TEST(TaskSubmitterTest, ARetryableExceptionIsRetriedOnTheSameWorker) {
  FakePorts ports;
  TaskSubmitter submitter(ports.Ports());
  Done done;
  submitter.Submit(Spec(-1), {}, proto::LeaseWorker(), done.Fn());
  ports.Grant();
  proto::ObjectValueProto raised = MakeErrorValue(Status::TaskError("flaky"));
  raised.set_retryable(true);
  for (int i = 0; i < 3; ++i) {
    ports.Reply(raised);
    ASSERT_EQ(ports.pushed.size(), 1u) << "the worker is fine: the retry runs there at once";
    EXPECT_EQ(ports.pushed[0].first.attempt(), i + 1);
  }
  EXPECT_EQ(done.calls, 0) << "-1 retries without bound";
  ports.Reply(Value("ok"));
  ASSERT_EQ(done.calls, 1);
  EXPECT_EQ(done.reply.returns(0).inline_data(), "ok");
  // The lease asked for the first retry came too late to be needed.
  while (!ports.leases.empty()) ports.Grant();
  EXPECT_TRUE(ports.pushed.empty());
  ASSERT_EQ(ports.returned.size(), 2u);
  for (const auto& r : ports.returned) EXPECT_FALSE(r.worker_failed());
}

TEST(TaskSubmitterTest, ABurstOfLikeTasksReusesOneLeaseAndReturnsTheSpareOnes) {
  FakePorts ports;
  TaskSubmitter submitter(ports.Ports());
  Done done;
  for (int i = 0; i < 3; ++i) submitter.Submit(Spec(0), {}, proto::LeaseWorker(), done.Fn());
  EXPECT_EQ(ports.leases.size(), 3u);
  EXPECT_EQ(submitter.NumLeaseRequests(), 3u);
  ActorId worker = ports.Grant();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(ports.pushed.size(), 1u);
    EXPECT_EQ(ports.pushed[0].first.actor_id(), worker.Binary());
    EXPECT_EQ(ports.pushed[0].first.lease_id(), "lease-3");
    EXPECT_TRUE(ports.returned.empty());
    ports.Reply(Value("v"));
  }
  EXPECT_EQ(done.calls, 3);
  ASSERT_EQ(ports.returned.size(), 1u) << "back once nothing of its shape waits";
  while (!ports.leases.empty()) ports.Grant();
  EXPECT_TRUE(ports.pushed.empty());
  EXPECT_EQ(ports.returned.size(), 3u) << "late grants go back at once";
  EXPECT_EQ(submitter.NumLeaseRequests(), 0u);
}

TEST(TaskSubmitterTest, LeaseRequestsInFlightAreBounded) {
  FakePorts ports;
  TaskSubmitter submitter(ports.Ports());
  Done done;
  for (int i = 0; i < 50; ++i) submitter.Submit(Spec(0), {}, proto::LeaseWorker(), done.Fn());
  EXPECT_EQ(ports.leases.size(), 10u);
  ports.Grant();  // one task runs; another request replaces the granted one
  EXPECT_EQ(submitter.NumLeaseRequests(), 10u);
}

TEST(TaskSubmitterTest, ALeaseTheHeadRefusesFailsEveryTaskOfItsShape) {
  FakePorts ports;
  TaskSubmitter submitter(ports.Ports());
  Done first, second;
  submitter.Submit(Spec(3), {}, proto::LeaseWorker(), first.Fn());
  submitter.Submit(Spec(3), {}, proto::LeaseWorker(), second.Fn());
  auto fn = std::move(ports.leases.front());
  ports.leases.erase(ports.leases.begin());
  fn(Status::InvalidArgument("no node has 64 CPUs"));
  ASSERT_EQ(first.calls, 1);
  ASSERT_EQ(second.calls, 1);
  EXPECT_EQ(ValueStatus(first.reply.returns(0)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValueStatus(second.reply.returns(0)).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ports.returned.empty());
}

}  // namespace
}  // namespace ferry::core
