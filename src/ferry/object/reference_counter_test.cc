#include "ferry/object/reference_counter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace ferry::object {
namespace {

class ReferenceCounterTest : public ::testing::Test {
 protected:
  std::vector<ObjectId> freed_;
  ReferenceCounter refs_{[this](const ObjectId& id) { freed_.push_back(id); }};
  ObjectId a_ = ObjectId::Random();
  ObjectId b_ = ObjectId::Random();
  WorkerId w1_ = WorkerId::Random();
  WorkerId w2_ = WorkerId::Random();
};

TEST_F(ReferenceCounterTest, OwnedObjectWaitsForItsFirstRef) {
  ASSERT_TRUE(refs_.AddOwnedObject(a_).ok());
  EXPECT_TRUE(refs_.Has(a_));
  EXPECT_EQ(refs_.AddOwnedObject(a_).code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(freed_.empty()) << "a new object with no refs yet must not be freed";
  auto c = refs_.GetCounts(a_);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->local, 0);
}

TEST_F(ReferenceCounterTest, RefCreatedAndDroppedFrees) {
  ASSERT_TRUE(refs_.AddOwnedObject(a_).ok());
  EXPECT_TRUE(refs_.AddLocalRef(a_));
  EXPECT_TRUE(refs_.RemoveLocalRef(a_));
  EXPECT_FALSE(refs_.Has(a_));
  EXPECT_EQ(freed_, std::vector<ObjectId>{a_});
  EXPECT_EQ(refs_.NumTracked(), 0u);
  // Later calls for the freed id are ignored and free nothing twice.
  EXPECT_FALSE(refs_.AddLocalRef(a_));
  EXPECT_FALSE(refs_.RemoveLocalRef(a_));
  EXPECT_EQ(freed_.size(), 1u);
}

TEST_F(ReferenceCounterTest, LocalRefsCount) {
  ASSERT_TRUE(refs_.AddOwnedObject(a_).ok());
  refs_.AddLocalRef(a_);
  refs_.AddLocalRef(a_);
  refs_.RemoveLocalRef(a_);
  EXPECT_TRUE(freed_.empty());
  EXPECT_EQ(refs_.GetCounts(a_)->local, 1);
  refs_.RemoveLocalRef(a_);
  EXPECT_EQ(freed_.size(), 1u);
}

TEST_F(ReferenceCounterTest, RemoveBelowZeroIsIgnored) {
  ASSERT_TRUE(refs_.AddOwnedObject(a_).ok());
  EXPECT_FALSE(refs_.RemoveLocalRef(a_));
  refs_.RemoveSubmittedTaskRefs(std::vector<ObjectId>{a_});
  EXPECT_FALSE(refs_.RemoveBorrower(a_, w1_));
  EXPECT_TRUE(refs_.Has(a_));
  EXPECT_TRUE(freed_.empty());
}

TEST_F(ReferenceCounterTest, SubmittedTaskRefsKeepObjectAlive) {
  ASSERT_TRUE(refs_.AddOwnedObject(a_).ok());
  ASSERT_TRUE(refs_.AddOwnedObject(b_).ok());
  refs_.AddLocalRef(a_);
  refs_.AddLocalRef(b_);
  ObjectId untracked = ObjectId::Random();
  std::vector<ObjectId> args = {a_, a_, b_, untracked};
  refs_.AddSubmittedTaskRefs(args);
  EXPECT_EQ(refs_.GetCounts(a_)->submitted, 2);
  EXPECT_FALSE(refs_.Has(untracked));
  refs_.RemoveLocalRef(a_);
  refs_.RemoveLocalRef(b_);
  EXPECT_TRUE(freed_.empty()) << "in-flight task args hold the objects";
  refs_.RemoveSubmittedTaskRefs(args);
  EXPECT_EQ(freed_, (std::vector<ObjectId>{a_, b_}));
}

TEST_F(ReferenceCounterTest, BorrowersCountOnceEach) {
  ASSERT_TRUE(refs_.AddOwnedObject(a_).ok());
  refs_.AddLocalRef(a_);
  EXPECT_TRUE(refs_.AddBorrower(a_, w1_));
  EXPECT_TRUE(refs_.AddBorrower(a_, w1_));
  EXPECT_TRUE(refs_.AddBorrower(a_, w2_));
  EXPECT_EQ(refs_.GetCounts(a_)->borrowers, 2u);
  refs_.RemoveLocalRef(a_);
  EXPECT_TRUE(refs_.RemoveBorrower(a_, w1_));
  EXPECT_FALSE(refs_.RemoveBorrower(a_, w1_)) << "w1 counted once";
  EXPECT_TRUE(freed_.empty());
  EXPECT_TRUE(refs_.RemoveBorrower(a_, w2_));
  EXPECT_EQ(freed_, std::vector<ObjectId>{a_});
  EXPECT_FALSE(refs_.AddBorrower(a_, w1_)) << "freed objects take no borrowers";
}

TEST_F(ReferenceCounterTest, DeadWorkerDropsItsBorrows) {
  ASSERT_TRUE(refs_.AddOwnedObject(a_).ok());
  ASSERT_TRUE(refs_.AddOwnedObject(b_).ok());
  refs_.AddBorrower(a_, w1_);
  refs_.AddBorrower(b_, w1_);
  refs_.AddBorrower(b_, w2_);
  refs_.RemoveWorkerBorrows(w1_);
  EXPECT_EQ(freed_, std::vector<ObjectId>{a_});
  EXPECT_TRUE(refs_.Has(b_));
  refs_.RemoveWorkerBorrows(w2_);
  EXPECT_EQ(freed_.size(), 2u);
}

TEST_F(ReferenceCounterTest, RemovalOlderThanTheBorrowersLatestRegistrationIsIgnored) {
  ASSERT_TRUE(refs_.AddOwnedObject(a_).ok());
  // The borrower dropped its copy (removal of epoch 1) and borrowed again
  // (epoch 2); the new registration overtook the removal on the way.
  refs_.AddBorrower(a_, w1_, 1);
  refs_.AddBorrower(a_, w1_, 2);
  EXPECT_FALSE(refs_.RemoveBorrower(a_, w1_, 1)) << "stale";
  EXPECT_TRUE(refs_.Has(a_));
  EXPECT_TRUE(refs_.RemoveBorrower(a_, w1_, 2));
  EXPECT_FALSE(refs_.Has(a_));
}

TEST_F(ReferenceCounterTest, PinnedNeverFrees) {
  ASSERT_TRUE(refs_.AddOwnedObject(a_).ok());
  refs_.AddLocalRef(a_);
  EXPECT_TRUE(refs_.Pin(a_));
  EXPECT_TRUE(refs_.Pin(a_));
  refs_.RemoveLocalRef(a_);
  refs_.AddBorrower(a_, w1_);
  refs_.RemoveBorrower(a_, w1_);
  EXPECT_TRUE(refs_.Has(a_));
  EXPECT_TRUE(freed_.empty());
  EXPECT_TRUE(refs_.GetCounts(a_)->pinned);
  EXPECT_FALSE(refs_.Pin(b_)) << "untracked";
}

TEST(ReferenceCounterCallbackTest, OnFreeRunsOutsideTheLock) {
  // on_free re-enters the counter (as an owner freeing nested refs would);
  // with the lock held this would deadlock.
  ObjectId outer = ObjectId::Random(), inner = ObjectId::Random();
  std::vector<ObjectId> freed;
  ReferenceCounter* self = nullptr;
  ReferenceCounter refs([&](const ObjectId& id) {
    freed.push_back(id);
    EXPECT_FALSE(self->Has(id));
    EXPECT_EQ(self->NumTracked(), id == outer ? 1u : 0u);
    if (id == outer) self->RemoveLocalRef(inner);  // the value held a ref to inner
  });
  self = &refs;
  ASSERT_TRUE(refs.AddOwnedObject(outer).ok());
  ASSERT_TRUE(refs.AddOwnedObject(inner).ok());
  refs.AddLocalRef(outer);
  refs.AddLocalRef(inner);
  refs.RemoveLocalRef(outer);
  EXPECT_EQ(freed, (std::vector<ObjectId>{outer, inner}));
  EXPECT_EQ(refs.NumTracked(), 0u);
}

TEST(ReferenceCounterCallbackTest, ConcurrentAddRemoveFreesEachObjectOnce) {
  std::atomic<int> frees{0};
  ReferenceCounter refs([&](const ObjectId&) { frees++; });
  std::vector<ObjectId> ids;
  for (int i = 0; i < 100; ++i) {
    ids.push_back(ObjectId::Random());
    ASSERT_TRUE(refs.AddOwnedObject(ids.back()).ok());
    refs.AddLocalRef(ids.back());  // the creator's ref, dropped at the end
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 50; ++round) {
        for (const ObjectId& id : ids) {
          refs.AddLocalRef(id);
          refs.AddSubmittedTaskRefs(std::span(&id, 1));
          refs.RemoveLocalRef(id);
          refs.RemoveSubmittedTaskRefs(std::span(&id, 1));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(frees.load(), 0);
  for (const ObjectId& id : ids) refs.RemoveLocalRef(id);
  EXPECT_EQ(frees.load(), 100);
  EXPECT_EQ(refs.NumTracked(), 0u);
}

}  // namespace
}  // namespace ferry::object
