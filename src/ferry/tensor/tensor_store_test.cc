#include "ferry/tensor/tensor_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "ferry/testing/deadline.h"

namespace ferry::tensor {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::WaitUntil;

// A tensor over its own heap buffer.
Tensor MakeTensor(uint64_t nbytes) {
  auto owner = std::make_shared<std::vector<char>>(nbytes);
  proto::TensorMetaProto meta;
  meta.set_device("cpu");
  return Tensor::Wrap(owner->data(), nbytes, std::move(meta), owner);
}

TEST(TensorStoreTest, PutGetEraseStats) {
  TensorStore store;
  const ObjectId a = ObjectId::Random();
  const ObjectId b = ObjectId::Random();
  Tensor t1 = MakeTensor(100);
  Tensor t2 = MakeTensor(50);
  ASSERT_TRUE(store.Put(a, {t1, t2}).ok());
  ASSERT_TRUE(store.Put(b, {t1}).ok());
  EXPECT_EQ(store.Put(a, {t2}).code(), StatusCode::kAlreadyExists);

  TensorStore::Stats s = store.GetStats();
  EXPECT_EQ(s.num_objects, 2u);
  EXPECT_EQ(s.num_tensors, 3u);
  EXPECT_EQ(s.bytes, 250u);

  std::optional<std::vector<Tensor>> got = store.Get(a);
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].data(), t1.data());
  EXPECT_EQ((*got)[1].data(), t2.data());
  EXPECT_FALSE(store.Get(ObjectId::Random()).has_value());

  EXPECT_TRUE(store.Erase(a));
  EXPECT_FALSE(store.Erase(a));
  s = store.GetStats();
  EXPECT_EQ(s.num_objects, 1u);
  EXPECT_EQ(s.num_tensors, 1u);
  EXPECT_EQ(s.bytes, 100u);

  std::optional<std::vector<Tensor>> taken = store.Take(b);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ((*taken)[0].data(), t1.data());
  EXPECT_EQ(store.GetStats().num_objects, 0u);

  ASSERT_TRUE(store.Put(a, {t2}).ok());
  store.Clear();
  EXPECT_EQ(store.GetStats().num_objects, 0u);
  EXPECT_EQ(store.GetStats().bytes, 0u);
}

TEST(TensorStoreTest, ErasingReleasesTheStoresReference) {
  TensorStore store;
  auto owner = std::make_shared<int>(1);
  std::weak_ptr<int> weak = owner;
  const ObjectId id = ObjectId::Random();
  ASSERT_TRUE(store.Put(id, {Tensor::Wrap(owner.get(), sizeof(int), {}, owner)}).ok());
  owner.reset();
  EXPECT_FALSE(weak.expired());
  store.Erase(id);
  EXPECT_TRUE(weak.expired());
}

TEST(TensorStoreTest, HoldsMatchesPointersInsideTensors) {
  TensorStore store;
  Tensor t = MakeTensor(64);
  char* base = static_cast<char*>(t.data());
  ASSERT_TRUE(store.Put(ObjectId::Random(), {t}).ok());
  EXPECT_TRUE(store.Holds(base));
  EXPECT_TRUE(store.Holds(base + 63));
  EXPECT_FALSE(store.Holds(base + 64));
  EXPECT_FALSE(store.Holds(base - 1));
}

TEST(TensorStoreTest, WaitFreedReturnsAtOnceWhenNotHeld) {
  TensorStore store;
  Tensor t = MakeTensor(16);
  EXPECT_TRUE(store.WaitFreed(t.data(), Deadline::After(milliseconds(0))).ok());
}

TEST(TensorStoreTest, WaitFreedTimesOutWithAClearMessage) {
  TensorStore store;
  Tensor t = MakeTensor(16);
  const ObjectId id = ObjectId::Random();
  ASSERT_TRUE(store.Put(id, {t}).ok());
  Status s = store.WaitFreed(t.data(), Deadline::After(milliseconds(20)));
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(s.message().find(id.Hex()), std::string::npos) << s;
  EXPECT_NE(s.message().find("still held"), std::string::npos) << s;
}

// Returns once `n` threads are blocked in WaitFreed (they registered under the
// store's lock and released it only by waiting), or fails after testing::kSoon.
void AwaitWaiters(const TensorStore& store, uint64_t n) {
  ASSERT_TRUE(WaitUntil([&] { return store.GetStats().waiters == n; })) << "waiter never blocked";
}

TEST(TensorStoreTest, WaitFreedIsUnblockedByEraseFromAnotherThread) {
  TensorStore store;
  Tensor t = MakeTensor(256);
  const ObjectId id = ObjectId::Random();
  const ObjectId other = ObjectId::Random();
  ASSERT_TRUE(store.Put(id, {t}).ok());
  ASSERT_TRUE(store.Put(other, {MakeTensor(8)}).ok());

  std::atomic<bool> done{false};
  Status result = Status::Internal("not run");
  // A pointer inside the tensor, not its start.
  const void* inside = static_cast<char*>(t.data()) + 100;
  std::thread waiter([&] {
    result = store.WaitFreed(inside, Deadline::After(seconds(30)));
    done = true;
  });
  AwaitWaiters(store, 1);
  // Erasing an unrelated object wakes the waiter, which must keep waiting:
  // once it has re-checked (a wakeup counted under the lock, in the same
  // critical section that would have unregistered it) it is still a waiter.
  EXPECT_TRUE(store.Erase(other));
  ASSERT_TRUE(WaitUntil([&] { return store.GetStats().waiter_wakeups != 0; }))
      << "waiter never woke";
  EXPECT_EQ(store.GetStats().waiters, 1u);
  EXPECT_FALSE(done.load());
  EXPECT_TRUE(store.Erase(id));
  waiter.join();
  EXPECT_TRUE(result.ok()) << result;
  EXPECT_FALSE(store.Holds(inside));
}

TEST(TensorStoreTest, WaitFreedWaitsForEveryObjectHoldingTheTensor) {
  TensorStore store;
  Tensor t = MakeTensor(32);
  const ObjectId a = ObjectId::Random();
  const ObjectId b = ObjectId::Random();
  ASSERT_TRUE(store.Put(a, {t}).ok());
  ASSERT_TRUE(store.Put(b, {t}).ok());
  Status result = Status::Internal("not run");
  std::thread waiter([&] { result = store.WaitFreed(t.data(), Deadline::After(seconds(30))); });
  AwaitWaiters(store, 1);
  store.Erase(a);
  // Still held by b: a short wait from this thread must time out.
  EXPECT_EQ(store.WaitFreed(t.data(), Deadline::After(milliseconds(10))).code(),
            StatusCode::kDeadlineExceeded);
  store.Clear();
  waiter.join();
  EXPECT_TRUE(result.ok()) << result;
}

TEST(TensorStoreTest, WaitFreedWithNeverDeadlineUnblockedByClear) {
  TensorStore store;
  Tensor t = MakeTensor(32);
  ASSERT_TRUE(store.Put(ObjectId::Random(), {t}).ok());
  Status result = Status::Internal("not run");
  std::thread waiter([&] { result = store.WaitFreed(t.data(), Deadline::Never()); });
  AwaitWaiters(store, 1);
  store.Clear();
  waiter.join();
  EXPECT_TRUE(result.ok()) << result;
}

}  // namespace
}  // namespace ferry::tensor
