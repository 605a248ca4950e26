#include "ferry/core/task_receiver.h"

#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <thread>

#include "ferry/core/error_value.h"

namespace ferry::core {
namespace {

// Holds every Resolve() until the test answers it: deterministic ordering.
class FakeResolver : public ArgumentResolver {
 public:
  void Resolve(const proto::ObjectRefProto& ref, std::function<void(ValuePtr)> done) override {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.emplace_back(ref.object_id(), std::move(done));
  }
  // RDT arguments: answers with `tensor_result` (one tensor or an error).
  void ResolveTensors(const proto::TaskArg&, const ValuePtr&,
                      std::function<void(StatusOr<std::vector<tensor::Tensor>>)> done) override {
    tensor_calls++;
    done(tensor_result);
  }
  int tensor_calls = 0;
  StatusOr<std::vector<tensor::Tensor>> tensor_result = std::vector<tensor::Tensor>{};
  void Answer(const std::string& object_id, ValuePtr value) {
    std::function<void(ValuePtr)> done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (it->first == object_id) {
          done = std::move(it->second);
          pending_.erase(it);
          break;
        }
      }
    }
    ASSERT_TRUE(done) << "nothing waits for " << object_id;
    done(std::move(value));
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<std::string, std::function<void(ValuePtr)>>> pending_;
};

// Records the methods it runs; returns one inline value per return id.
class RecordingExecutor : public TaskExecutor {
 public:
  std::vector<proto::ObjectValueProto> Execute(const proto::TaskSpec& spec,
                                               std::vector<ExecArg> args) override {
    std::lock_guard<std::mutex> lock(mu);
    ran.push_back(spec.method());
    for (auto& a : args) arg_tensors.push_back(a.tensors.size());
    std::vector<proto::ObjectValueProto> out(spec.return_ids_size());
    for (auto& v : out) {
      v.set_format("raw");
      v.set_inline_data(spec.method());
      v.set_data_size(spec.method().size());
    }
    return out;
  }
  std::mutex mu;
  std::vector<std::string> ran;
  std::vector<size_t> arg_tensors;  // tensors per argument, in order
};

proto::TaskSpec Spec(const std::string& caller, uint64_t seq, const std::string& method,
                     const std::string& ref_id = "") {
  proto::TaskSpec spec;
  spec.set_caller_id(caller);
  spec.set_sequence_number(seq);
  spec.set_method(method);
  spec.add_return_ids("r-" + method);
  spec.add_args()->mutable_value()->set_format("raw");
  if (!ref_id.empty()) spec.add_args()->mutable_ref()->set_object_id(ref_id);
  return spec;
}

ValuePtr RawValue() {
  auto v = std::make_shared<proto::ObjectValueProto>();
  v->set_format("raw");
  return v;
}

struct Harness {
  FakeResolver resolver;
  RecordingExecutor executor;
  Timeline timeline{16};
  TaskReceiver receiver{&resolver, &timeline};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, proto::PushTaskReply>> replies;

  TaskReceiver::ReplyFn Reply(const std::string& method) {
    return [this, method](proto::PushTaskReply r) {
      std::lock_guard<std::mutex> lock(mu);
      replies.emplace_back(method, std::move(r));
      cv.notify_all();
    };
  }
  void WaitReplies(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return replies.size() >= n; }));
  }
};

TEST(TaskReceiverTest, OneCallerRunsInSequenceOrderWhateverTheArrivalOrder) {
  Harness h;
  h.receiver.Submit(Spec("c", 2, "third"), h.Reply("third"));
  h.receiver.Submit(Spec("c", 0, "first"), h.Reply("first"));
  h.receiver.Submit(Spec("c", 1, "second"), h.Reply("second"));
  std::thread t([&] { h.receiver.RunExecutor(&h.executor); });
  h.WaitReplies(3);
  h.receiver.Stop();
  t.join();
  EXPECT_EQ(h.executor.ran, (std::vector<std::string>{"first", "second", "third"}));
}

TEST(TaskReceiverTest, LaterTaskOfSameCallerWaitsForEarlierArgument) {
  Harness h;
  h.receiver.Submit(Spec("c", 0, "needs_x", "x"), h.Reply("needs_x"));
  h.receiver.Submit(Spec("c", 1, "plain"), h.Reply("plain"));
  h.receiver.Submit(Spec("other", 0, "other_caller"), h.Reply("other_caller"));
  std::thread t([&] { h.receiver.RunExecutor(&h.executor); });
  // Another caller's task is not held up by c's unresolved argument.
  h.WaitReplies(1);
  {
    std::lock_guard<std::mutex> lock(h.executor.mu);
    EXPECT_EQ(h.executor.ran, (std::vector<std::string>{"other_caller"}));
  }
  h.resolver.Answer("x", RawValue());
  h.WaitReplies(3);
  h.receiver.Stop();
  t.join();
  EXPECT_EQ(h.executor.ran, (std::vector<std::string>{"other_caller", "needs_x", "plain"}));
}

TEST(TaskReceiverTest, RecordsEachTaskWithItsPhasesInTheTimeline) {
  Harness h;
  h.receiver.Submit(Spec("c", 0, "needs_x", "x"), h.Reply("needs_x"));
  h.receiver.Submit(Spec("c", 1, "plain"), h.Reply("plain"));
  EXPECT_TRUE(h.timeline.Tasks().empty()) << "recorded when they finish";
  h.resolver.Answer("x", RawValue());
  std::thread t([&] { h.receiver.RunExecutor(&h.executor); });
  h.WaitReplies(2);
  h.receiver.Stop();
  t.join();
  std::vector<TaskSpan> spans = h.timeline.Tasks();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].method, "needs_x");
  EXPECT_EQ(spans[1].method, "plain");
  for (const TaskSpan& s : spans) {
    EXPECT_GT(s.arrived_us, 0);
    EXPECT_LE(s.arrived_us, s.resolved_us);
    EXPECT_LE(s.resolved_us, s.started_us);
    EXPECT_LE(s.started_us, s.finished_us);
  }
  EXPECT_EQ(spans[1].resolved_us, spans[1].arrived_us) << "no argument to wait for";
  EXPECT_LE(spans[0].finished_us, spans[1].started_us) << "one caller's tasks in order";
}

TEST(TaskReceiverTest, RecordsNothingWithATimelineOfNoCapacity) {
  FakeResolver resolver;
  RecordingExecutor executor;
  Timeline off(0);
  TaskReceiver receiver(&resolver, &off);
  std::promise<void> replied;
  receiver.Submit(Spec("c", 0, "m"), [&](proto::PushTaskReply) { replied.set_value(); });
  std::thread t([&] { receiver.RunExecutor(&executor); });
  ASSERT_EQ(replied.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  receiver.Stop();
  t.join();
  EXPECT_TRUE(off.Tasks().empty());
  EXPECT_EQ(off.dropped(), 0u);
  EXPECT_EQ(off.totals().tasks, 1u) << "counted all the same";
}

TEST(TaskReceiverTest, FailedArgumentFailsTaskWithoutRunningIt) {
  Harness h;
  h.receiver.Submit(Spec("c", 0, "consumer", "bad"), h.Reply("consumer"));
  h.resolver.Answer("bad", std::make_shared<proto::ObjectValueProto>(
                               MakeErrorValue(Status::TaskError("producer raised"))));
  std::thread t([&] { h.receiver.RunExecutor(&h.executor); });
  h.WaitReplies(1);
  h.receiver.Stop();
  t.join();
  EXPECT_TRUE(h.executor.ran.empty());
  EXPECT_EQ(h.timeline.totals().tasks, 1u);
  EXPECT_EQ(h.timeline.totals().task_failures, 1u);
  ASSERT_EQ(h.replies[0].second.returns_size(), 1);
  EXPECT_EQ(ValueStatus(h.replies[0].second.returns(0)).code(), StatusCode::kTaskError);
}

TEST(TaskReceiverTest, StopAnswersQueuedTasksWithErrors) {
  Harness h;
  h.receiver.Submit(Spec("c", 0, "blocked", "never"), h.Reply("blocked"));
  h.receiver.Submit(Spec("c", 1, "behind"), h.Reply("behind"));
  EXPECT_EQ(h.receiver.NumQueued(), 2u);
  h.receiver.Stop();
  h.WaitReplies(2);
  for (auto& [method, reply] : h.replies) {
    EXPECT_EQ(ValueStatus(reply.returns(0)).code(), StatusCode::kUnavailable) << method;
  }
  // A late Submit is refused with an error, never dropped.
  h.receiver.Submit(Spec("c", 2, "late"), h.Reply("late"));
  h.WaitReplies(3);
}

// Finishes every task later, on a thread of its own, as an asyncio actor's
// event loop does: the executor thread is free again at once.
class DeferringExecutor : public RecordingExecutor {
 public:
  void ExecuteAsync(const proto::TaskSpec& spec, std::vector<ExecArg> args, DoneFn done) override {
    std::lock_guard<std::mutex> lock(deferred_mu);
    deferred.emplace_back(Execute(spec, std::move(args)), std::move(done));
  }
  // Completes the deferred tasks, newest first, on another thread.
  void FinishAllInReverse() {
    std::vector<std::pair<std::vector<proto::ObjectValueProto>, DoneFn>> tasks;
    {
      std::lock_guard<std::mutex> lock(deferred_mu);
      tasks.swap(deferred);
    }
    std::thread([&] {
      for (auto it = tasks.rbegin(); it != tasks.rend(); ++it) it->second(std::move(it->first));
    }).join();
  }
  size_t NumDeferred() {
    std::lock_guard<std::mutex> lock(deferred_mu);
    return deferred.size();
  }

 private:
  std::mutex deferred_mu;
  std::vector<std::pair<std::vector<proto::ObjectValueProto>, DoneFn>> deferred;
};

TEST(TaskReceiverTest, AnAsynchronousExecutorRepliesWhenItFinishesNotWhenItReturns) {
  Harness h;
  DeferringExecutor executor;
  h.receiver.Submit(Spec("c", 0, "first"), h.Reply("first"));
  h.receiver.Submit(Spec("c", 1, "second"), h.Reply("second"));
  std::thread t([&] { h.receiver.RunExecutor(&executor); });
  // One executor thread started both: neither blocked it.
  for (int i = 0; i < 1000 && executor.NumDeferred() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(executor.NumDeferred(), 2u);
  {
    std::lock_guard<std::mutex> lock(h.mu);
    EXPECT_TRUE(h.replies.empty());
  }
  executor.FinishAllInReverse();
  h.WaitReplies(2);
  h.receiver.Stop();
  t.join();
  EXPECT_EQ(h.replies[0].first, "second");
  EXPECT_EQ(h.replies[1].first, "first");
  EXPECT_EQ(h.replies[1].second.returns(0).inline_data(), "first");
}

proto::TaskSpec RdtSpec(const std::string& method) {
  proto::TaskSpec spec = Spec("c", 0, method);
  proto::TaskArg* arg = spec.add_args();
  arg->set_object_id("obj");
  arg->mutable_value()->set_format("pickle5");
  arg->mutable_value()->mutable_rdt()->set_transport("gloo");
  return spec;
}

TEST(TaskReceiverTest, RdtArgumentGetsItsTensorsBeforeTheCall) {
  Harness h;
  static int keep = 0;
  proto::TensorMetaProto meta;
  meta.set_nbytes(sizeof(keep));
  h.resolver.tensor_result = std::vector<tensor::Tensor>{
      tensor::Tensor::Wrap(&keep, sizeof(keep), meta, nullptr)};
  h.receiver.Submit(RdtSpec("consume"), h.Reply("consume"));
  std::thread t([&] { h.receiver.RunExecutor(&h.executor); });
  h.WaitReplies(1);
  h.receiver.Stop();
  t.join();
  EXPECT_EQ(h.resolver.tensor_calls, 1);
  EXPECT_EQ(h.executor.ran, std::vector<std::string>{"consume"});
  EXPECT_EQ(h.executor.arg_tensors, (std::vector<size_t>{0, 1}));
}

TEST(TaskReceiverTest, FailedTensorReceiveFailsTheTaskWithoutRunningIt) {
  Harness h;
  h.resolver.tensor_result = Status::Aborted("gloo transfer failed");
  h.receiver.Submit(RdtSpec("consume"), h.Reply("consume"));
  std::thread t([&] { h.receiver.RunExecutor(&h.executor); });
  h.WaitReplies(1);
  h.receiver.Stop();
  t.join();
  EXPECT_TRUE(h.executor.ran.empty());
  EXPECT_EQ(ValueStatus(h.replies[0].second.returns(0)).code(), StatusCode::kAborted);
}

}  // namespace
}  // namespace ferry::core
