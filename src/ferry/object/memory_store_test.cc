#include "ferry/object/memory_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "ferry/testing/deadline.h"

namespace ferry::object {
namespace {

using namespace std::chrono_literals;
using testing::Soon;

MemoryStore::Value Val(const std::string& s) {
  auto v = std::make_shared<proto::ObjectValueProto>();
  v->set_format("raw");
  v->set_inline_data(s);
  return v;
}

TEST(MemoryStoreTest, PutGetIfReadyErase) {
  MemoryStore store;
  ObjectId a = ObjectId::Random();
  EXPECT_EQ(store.GetIfReady(a), nullptr);
  auto v = Val("x");
  EXPECT_TRUE(store.Put(a, v));
  EXPECT_EQ(store.GetIfReady(a), v);
  EXPECT_FALSE(store.Put(a, Val("y"))) << "values are immutable";
  EXPECT_EQ(store.GetIfReady(a), v);
  EXPECT_EQ(store.Size(), 1u);
  store.Erase(a);
  EXPECT_EQ(store.GetIfReady(a), nullptr);
  EXPECT_EQ(store.Size(), 0u);
  store.Erase(a);  // no-op
}

TEST(MemoryStoreTest, ReplaceSwapsOnlyAReadyValue) {
  MemoryStore store;
  ObjectId a = ObjectId::Random();
  EXPECT_FALSE(store.Replace(a, Val("lost"))) << "a pending object has nothing to replace";
  EXPECT_EQ(store.GetIfReady(a), nullptr);
  ASSERT_TRUE(store.Put(a, Val("x")));
  auto lost = Val("lost");
  EXPECT_TRUE(store.Replace(a, lost));
  EXPECT_EQ(store.GetIfReady(a), lost);
  EXPECT_EQ(store.Size(), 1u);
}

TEST(MemoryStoreTest, ErrorValuesAreReady) {
  MemoryStore store;
  ObjectId a = ObjectId::Random();
  auto v = std::make_shared<proto::ObjectValueProto>();
  v->mutable_error()->set_code(static_cast<int>(StatusCode::kTaskError));
  v->mutable_error()->set_message("boom");
  store.Put(a, v);
  auto got = store.Get(std::span(&a, 1), Deadline::After(0s));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0]->error().message(), "boom");
}

TEST(MemoryStoreTest, GetReadyDoesNotBlockEvenWithExpiredDeadline) {
  MemoryStore store;
  std::vector<ObjectId> ids = {ObjectId::Random(), ObjectId::Random()};
  store.Put(ids[0], Val("0"));
  store.Put(ids[1], Val("1"));
  std::vector<ObjectId> ask = {ids[1], ids[0], ids[1]};
  auto got = store.Get(ask, Deadline::After(-1s));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0]->inline_data(), "1");
  EXPECT_EQ((*got)[1]->inline_data(), "0");
  EXPECT_EQ((*got)[2]->inline_data(), "1");
}

TEST(MemoryStoreTest, GetTimesOutNamingMissingCount) {
  MemoryStore store;
  std::vector<ObjectId> ids = {ObjectId::Random(), ObjectId::Random(), ObjectId::Random()};
  store.Put(ids[1], Val("1"));
  auto start = Clock::now();
  auto got = store.Get(ids, Deadline::After(50ms));
  EXPECT_GE(Clock::now() - start, 50ms);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(got.status().message().find("2 of 3"), std::string::npos) << got.status();
  // The timed-out waiter left nothing behind.
  EXPECT_EQ(store.Size(), 1u);
  store.Put(ids[0], Val("0"));  // must not touch the dead waiter (ASan)
}

TEST(MemoryStoreTest, GetBlocksUntilPutsFromOtherThreads) {
  MemoryStore store;
  std::vector<ObjectId> ids;
  for (int i = 0; i < 8; ++i) ids.push_back(ObjectId::Random());
  std::vector<std::thread> producers;
  for (int i = 0; i < 8; ++i) {
    producers.emplace_back([&, i] { store.Put(ids[i], Val(std::to_string(i))); });
  }
  auto got = store.Get(ids, Soon());
  for (auto& t : producers) t.join();
  ASSERT_TRUE(got.ok()) << got.status();
  for (int i = 0; i < 8; ++i) EXPECT_EQ((*got)[i]->inline_data(), std::to_string(i));
}

TEST(MemoryStoreTest, ManyWaitersOnOneObject) {
  MemoryStore store;
  ObjectId a = ObjectId::Random();
  std::atomic<int> ok{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 8; ++i) {
    waiters.emplace_back([&] {
      auto got = store.Get(std::span(&a, 1), Soon());
      if (got.ok() && (*got)[0]->inline_data() == "v") ok++;
    });
  }
  store.Put(a, Val("v"));
  for (auto& t : waiters) t.join();
  EXPECT_EQ(ok.load(), 8);
}

TEST(MemoryStoreTest, WaitReturnsWhenEnoughAreReady) {
  MemoryStore store;
  std::vector<ObjectId> ids = {ObjectId::Random(), ObjectId::Random(), ObjectId::Random()};
  store.Put(ids[2], Val("2"));
  EXPECT_EQ(store.Wait(ids, 1, Soon()), (std::vector<bool>{false, false, true}));
  EXPECT_EQ(store.Wait(ids, 0, Soon()), (std::vector<bool>{false, false, true}));

  std::thread producer([&] { store.Put(ids[0], Val("0")); });
  auto ready = store.Wait(ids, 2, Soon());
  producer.join();
  EXPECT_EQ(ready, (std::vector<bool>{true, false, true}));

  // Not enough before the deadline: returns what is ready.
  EXPECT_EQ(store.Wait(ids, 3, Deadline::After(20ms)), (std::vector<bool>{true, false, true}));
  // num_ready beyond the list is clamped.
  store.Put(ids[1], Val("1"));
  EXPECT_EQ(store.Wait(ids, 10, Deadline::After(0s)), (std::vector<bool>{true, true, true}));
}

TEST(MemoryStoreTest, SubscribeFiresExactlyOnce) {
  MemoryStore store;
  ObjectId a = ObjectId::Random();
  int calls = 0;
  std::thread::id caller;
  store.Subscribe(a, [&](MemoryStore::Value v) {
    calls++;
    caller = std::this_thread::get_id();
    EXPECT_EQ(v->inline_data(), "v");
  });
  EXPECT_EQ(calls, 0);
  std::thread producer([&] { store.Put(a, Val("v")); });
  auto producer_id = producer.get_id();
  producer.join();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(caller, producer_id) << "runs on the Put's thread";
  store.Put(a, Val("again"));
  EXPECT_EQ(calls, 1);

  // Already ready: runs now, on this thread.
  store.Subscribe(a, [&](MemoryStore::Value v) {
    calls++;
    caller = std::this_thread::get_id();
  });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(caller, std::this_thread::get_id());
}

TEST(MemoryStoreTest, CallbacksMayReenterTheStore) {
  MemoryStore store;
  ObjectId a = ObjectId::Random(), b = ObjectId::Random();
  // a's callback makes b ready; b's callback reads a.
  store.Subscribe(a, [&](MemoryStore::Value v) { store.Put(b, Val(v->inline_data() + "!")); });
  std::string seen;
  store.Subscribe(b, [&](MemoryStore::Value v) {
    seen = store.GetIfReady(a)->inline_data() + v->inline_data();
  });
  store.Put(a, Val("x"));
  EXPECT_EQ(seen, "xx!");
}

TEST(MemoryStoreTest, EraseOfPendingKeepsWaiters) {
  MemoryStore store;
  ObjectId a = ObjectId::Random();
  std::atomic<bool> fired{false};
  store.Subscribe(a, [&](MemoryStore::Value) { fired = true; });
  store.Erase(a);
  store.Put(a, Val("v"));
  EXPECT_TRUE(fired.load());
}

TEST(MemoryStoreTest, ConcurrentGetWaitPutStress) {
  MemoryStore store;
  constexpr int kN = 200;
  std::vector<ObjectId> ids;
  for (int i = 0; i < kN; ++i) ids.push_back(ObjectId::Random());
  std::atomic<int> subscribed{0};
  for (const auto& id : ids) store.Subscribe(id, [&](MemoryStore::Value) { subscribed++; });
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kN; i += 4) {
        std::vector<ObjectId> pair = {ids[i], ids[(i * 7 + 3) % kN]};
        if (!store.Get(pair, Soon()).ok()) failures++;
      }
    });
  }
  threads.emplace_back([&] {
    auto ready = store.Wait(ids, kN, Soon());
    for (bool r : ready) failures += r ? 0 : 1;
  });
  threads.emplace_back([&] {
    for (int i = kN - 1; i >= 0; --i) store.Put(ids[i], Val(std::to_string(i)));
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(subscribed.load(), kN);
  EXPECT_EQ(store.Size(), static_cast<size_t>(kN));
}

}  // namespace
}  // namespace ferry::object
