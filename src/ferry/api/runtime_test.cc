// The C++ API end to end: this binary is the driver and, re-executed by
// ferry, every actor worker (main() hands workers to ferry::Init first).
#include <gtest/gtest.h>

#include <future>

#include "ferry/ferry.h"

namespace {

using namespace std::chrono_literals;

struct Point {
  double x = 0;
  double y = 0;
  std::vector<ferry::Tensor> payload;
  FERRY_SERIALIZE(x, y, payload)
};

class Worker {
 public:
  static Worker* Create(int base) {
    if (base < 0) throw std::invalid_argument("base must be >= 0");
    return new Worker(base);
  }
  explicit Worker(int base) : base_(base) {}

  int Add(int a, int b) { return base_ + a + b; }
  std::string Echo(const std::string& s) const { return s; }
  int Fail(const std::string& message) { throw std::runtime_error(message); }
  // Blocks until the process ends: what a Get timeout and Kill are tested on.
  int Hang() { return never_.get_future().get(); }
  void SetBase(int base) { base_ = base; }
  int Base() const { return base_; }
  ferry::Tensor MakeTensor(int64_t n) {
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(i);
    last_ = ferry::Tensor::FromVector(v);
    return last_;
  }
  double Sum(const ferry::Tensor& t) {
    double s = 0;
    for (float x : t.ToVector<float>()) s += x;
    return s;
  }
  bool IsLast(const ferry::Tensor& t) { return t.SharesMemoryWith(last_); }
  // Whether ferry released the last returned tensor within `ms`.
  bool FreedWithin(int ms) {
    try {
      ferry::WaitTensorFreed(last_, std::chrono::milliseconds(ms));
      return true;
    } catch (const ferry::GetTimeoutError&) {
      return false;
    }
  }
  Point Move(Point p, double dx) {
    p.x += dx;
    for (auto& t : p.payload) t.data<float>()[0] += 1;
    return p;
  }

 private:
  int base_;
  std::promise<int> never_;
  ferry::Tensor last_;
};
FERRY_REMOTE(Worker::Create, &Worker::Add, &Worker::Echo, &Worker::Fail, &Worker::Hang,
             &Worker::SetBase, &Worker::Base, &Worker::MakeTensor, &Worker::Sum, &Worker::IsLast,
             &Worker::Move, &Worker::FreedWithin);

class Runtime : public ::testing::Environment {
 public:
  Runtime(int argc, char** argv) : argc_(argc), argv_(argv) {}
  void SetUp() override { ferry::Init(argc_, argv_); }
  void TearDown() override { ferry::Shutdown(); }

 private:
  int argc_;
  char** argv_;
};

class ApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { actor_ = ferry::Actor(Worker::Create).Remote(10); }
  static void TearDownTestSuite() { actor_ = {}; }
  static ferry::ActorHandle<Worker> actor_;
};
ferry::ActorHandle<Worker> ApiTest::actor_;

TEST_F(ApiTest, CallsConvertArgumentsToTheParameterTypes) {
  EXPECT_EQ(*ferry::Get(actor_.Task(&Worker::Add).Remote(1, short{2})), 13);
  EXPECT_EQ(*ferry::Get(actor_.Task(&Worker::Echo).Remote("hi")), "hi");
  actor_.Task(&Worker::SetBase).Remote(10);  // void: an ObjectRef<void>
  ferry::Get(actor_.Task(&Worker::SetBase).Remote(10));
}

TEST_F(ApiTest, ObjectRefArgumentsAreResolvedBeforeTheCall) {
  ferry::ObjectRef<int> a = actor_.Task(&Worker::Add).Remote(1, 2);  // 13
  ferry::ObjectRef<int> b = actor_.Task(&Worker::Add).Remote(a, a);  // 36
  ferry::ObjectRef<int> p = ferry::Put(100);
  ferry::ObjectRef<int> c = actor_.Task(&Worker::Add).Remote(b, p);  // 146
  EXPECT_EQ(*ferry::Get(c), 146);
  std::vector<std::shared_ptr<int>> all = ferry::Get(std::vector<ferry::ObjectRef<int>>{a, b, p});
  EXPECT_EQ(*all[0], 13);
  EXPECT_EQ(*all[1], 36);
  EXPECT_EQ(*all[2], 100);
}

TEST_F(ApiTest, WaitSplitsReadyFromPending) {
  ferry::ObjectRef<int> hang = actor_.Task(&Worker::Add).Remote(0, 0);
  auto h = ferry::Actor(Worker::Create).Remote(0);
  ferry::ObjectRef<int> pending = h.Task(&Worker::Hang).Remote();
  ferry::WaitResult<int> r = ferry::Wait(std::vector<ferry::ObjectRef<int>>{pending, hang}, 1);
  ASSERT_EQ(r.ready.size(), 1u);
  EXPECT_EQ(r.ready[0], hang);
  EXPECT_EQ(r.unready[0], pending);
  r = ferry::Wait(std::vector<ferry::ObjectRef<int>>{pending, hang}, 2, 50ms);
  EXPECT_EQ(r.ready.size(), 1u);
  ferry::Kill(h);
}

TEST_F(ApiTest, AnExceptionInAMethodIsATaskErrorWithItsMessage) {
  auto r = actor_.Task(&Worker::Fail).Remote("the sky fell");
  try {
    ferry::Get(r);
    FAIL() << "expected TaskError";
  } catch (const ferry::TaskError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("the sky fell"), std::string::npos) << what;
    EXPECT_NE(what.find("Worker::Fail"), std::string::npos) << what;
    EXPECT_NE(what.find("std::runtime_error"), std::string::npos) << what;
  }
  // The error reaches dependent tasks; the actor lives on.
  EXPECT_THROW(ferry::Get(actor_.Task(&Worker::Add).Remote(r, 1)), ferry::TaskError);
  EXPECT_EQ(*ferry::Get(actor_.Task(&Worker::Add).Remote(0, 0)), 10);
}

TEST_F(ApiTest, GetTimesOutThenKillMakesTheActorDead) {
  auto h = ferry::Actor(Worker::Create).Remote(0);
  ferry::ObjectRef<int> r = h.Task(&Worker::Hang).Remote();
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(ferry::Get(r, 200ms), ferry::GetTimeoutError);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
  EXPECT_THROW(ferry::Get(std::vector<ferry::ObjectRef<int>>{r}, 10ms), ferry::GetTimeoutError);
  ferry::Kill(h);
  EXPECT_THROW(ferry::Get(r, 30s), ferry::ActorDiedError);
  EXPECT_THROW(ferry::Get(h.Task(&Worker::Base).Remote(), 30s), ferry::ActorDiedError);
}

TEST_F(ApiTest, ARestartableActorIsRecreatedByItsFactory) {
  auto h = ferry::Actor(Worker::Create).SetMaxRestarts(1).Remote(5);
  h.Task(&Worker::SetBase).Remote(7);
  EXPECT_EQ(*ferry::Get(h.Task(&Worker::Base).Remote(), 60s), 7);
  ferry::Kill(h, /*no_restart=*/false);
  // Sent before or after this process noticed: retried or queued, it runs
  // in the new process, built by Create(5).
  EXPECT_EQ(*ferry::Get(h.Task(&Worker::Base).SetMaxTaskRetries(1).Remote(), 60s), 5);
  ferry::Kill(h);  // no_restart defaults to true, as in Ray
  EXPECT_THROW(ferry::Get(h.Task(&Worker::Base).Remote(), 60s), ferry::ActorDiedError);
}

TEST_F(ApiTest, AThrowingFactoryMakesTheActorDead) {
  auto h = ferry::Actor(Worker::Create).Remote(-1);
  try {
    ferry::Get(h.Task(&Worker::Base).Remote(), 60s);
    FAIL() << "expected ActorDiedError";
  } catch (const ferry::ActorDiedError& e) {
    EXPECT_NE(std::string(e.what()).find("base must be >= 0"), std::string::npos) << e.what();
  }
}

TEST_F(ApiTest, TensorsAndStructsThroughTheObjectStore) {
  ferry::ObjectRef<ferry::Tensor> t = actor_.Task(&Worker::MakeTensor).Remote(100000);
  EXPECT_DOUBLE_EQ(*ferry::Get(actor_.Task(&Worker::Sum).Remote(t)), 4999950000.0);
  std::shared_ptr<ferry::Tensor> local = ferry::Get(t);
  EXPECT_EQ(local->numel(), 100000);
  EXPECT_EQ(local->data<float>()[99999], 99999.f);
  // Without a tensor transport the producer gets a copy, not its own tensor.
  EXPECT_FALSE(*ferry::Get(actor_.Task(&Worker::IsLast).Remote(t)));

  Point p{1, 2, {ferry::Tensor::FromVector(std::vector<float>{5, 6})}};
  std::shared_ptr<Point> q = ferry::Get(actor_.Task(&Worker::Move).Remote(p, 0.5));
  EXPECT_DOUBLE_EQ(q->x, 1.5);
  EXPECT_EQ(q->payload.at(0).ToVector<float>(), (std::vector<float>{6, 6}));
  EXPECT_EQ(p.payload[0].ToVector<float>(), (std::vector<float>{5, 6}));  // ours untouched
}

TEST_F(ApiTest, GlooTensorsStayInTheProducer) {
  // A gloo method needs its actor in a gloo group (checked at Remote()).
  ferry::CreateCollectiveGroup({actor_}, "gloo", "producer_alone");
  ferry::ObjectRef<ferry::Tensor> t =
      actor_.Task(&Worker::MakeTensor).SetTensorTransport("gloo").Remote(1000);
  // Back to the producer: the same memory.
  EXPECT_TRUE(*ferry::Get(actor_.Task(&Worker::IsLast).Remote(t)));
  EXPECT_DOUBLE_EQ(*ferry::Get(actor_.Task(&Worker::Sum).Remote(t)), 499500.0);
  try {
    ferry::Get(t);
    FAIL() << "expected InvalidArgumentError";
  } catch (const ferry::InvalidArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("object_store"), std::string::npos) << e.what();
  }
  ferry::GetOptions via_store;
  via_store.tensor_transport = "object_store";
  EXPECT_EQ(ferry::Get(t, via_store)->data<float>()[999], 999.f);
}

TEST_F(ApiTest, WaitTensorFreedWaitsForTheLastReference) {
  auto h = ferry::Actor(Worker::Create).Remote(0);
  ferry::CreateCollectiveGroup({h}, "gloo", "freed_wait");
  ferry::ObjectRef<ferry::Tensor> t =
      h.Task(&Worker::MakeTensor).SetTensorTransport("gloo").Remote(100000);
  EXPECT_DOUBLE_EQ(*ferry::Get(h.Task(&Worker::Sum).Remote(t)), 4999950000.0);
  // Our ref keeps the tensor in the producer's store: the wait times out.
  EXPECT_FALSE(*ferry::Get(h.Task(&Worker::FreedWithin).Remote(50)));
  t = {};  // the last reference: the owner frees the object in the producer
  EXPECT_TRUE(*ferry::Get(h.Task(&Worker::FreedWithin).Remote(60000)));
  ferry::Kill(h);
}

TEST_F(ApiTest, MisuseIsAClearError) {
  EXPECT_THROW(ferry::Get(ferry::ObjectRef<int>()), ferry::InvalidArgumentError);
  EXPECT_THROW(actor_.Task(&Worker::MakeTensor).SetTensorTransport("carrier-pigeon").Remote(1),
               ferry::Error);
  EXPECT_THROW(ferry::CreateCollectiveGroup({actor_}, "smoke-signals"),
               ferry::InvalidArgumentError);
}

}  // namespace

int main(int argc, char** argv) {
  // A worker serves its actor here and exits; only the driver runs tests.
  if (ferry::IsWorker()) ferry::Init(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new Runtime(argc, argv));
  return RUN_ALL_TESTS();
}
