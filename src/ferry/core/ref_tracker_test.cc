#include "ferry/core/ref_tracker.h"

#include <gtest/gtest.h>

#include <vector>

#include "ferry/core/fake_peer_messenger.h"

namespace ferry::core {
namespace {

// An owner and a borrower process, in one: the borrower's messages reach
// the owner's tracker through a FakePeerMessenger, in call order.
class RefTrackerTest : public ::testing::Test {
 protected:
  RefTrackerTest()
      : owned_([this](const ObjectId& id) { freed_.push_back(id); }),
        owner_(owner_id_, owned_, peers_),
        borrower_(borrower_id_, borrower_owned_, peers_) {
    peers_.Serve("owner", [this](uint16_t method, std::string_view payload, auto reply) {
      if (method == proto::ADD_BORROWERS) {
        Status s = owner_.HandleAddBorrowers(payload);
        proto::Empty empty;
        reply(s, &empty);
      } else if (method == proto::REMOVE_BORROWERS) {
        owner_.HandleRemoveBorrowers(payload);
        reply(Status::Ok(), nullptr);
      }
    });
    ref_ = ObjectRef{ObjectId::Random(), "owner", owner_id_};
    EXPECT_TRUE(owned_.AddOwnedObject(ref_.id).ok());
    owner_.AddLocalRef(ref_);  // the owner's own handle
  }

  // The borrower deserializes a copy and registers as the protocol says.
  void Borrow() {
    if (borrower_.AddDeserializedRef(ref_)) {
      ASSERT_TRUE(
          borrower_.RegisterBorrows({&ref_, 1}, Deadline::After(std::chrono::seconds(5))).ok());
    }
  }
  size_t Borrowers() {
    return owned_.GetCounts(ref_.id) ? owned_.GetCounts(ref_.id)->borrowers : 0;
  }
  bool Freed() { return !owned_.Has(ref_.id); }

  const WorkerId owner_id_ = WorkerId::Random();
  const WorkerId borrower_id_ = WorkerId::Random();
  std::vector<ObjectId> freed_;
  FakePeerMessenger peers_;
  object::ReferenceCounter owned_;
  object::ReferenceCounter borrower_owned_{nullptr};
  RefTracker owner_;
  RefTracker borrower_;
  ObjectRef ref_;
};

TEST_F(RefTrackerTest, ObjectLivesUntilTheBorrowersLastCopyDies) {
  Borrow();
  EXPECT_EQ(Borrowers(), 1u);
  owner_.RemoveLocalRef(ref_);
  EXPECT_FALSE(Freed()) << "the borrower still holds a copy";
  borrower_.RemoveLocalRef(ref_);
  EXPECT_TRUE(Freed());
  ASSERT_EQ(freed_.size(), 1u);
  EXPECT_EQ(freed_[0], ref_.id);
  EXPECT_EQ(borrower_.NumBorrowed(), 0u);
}

TEST_F(RefTrackerTest, OnlyTheFirstCopyRegistersAndOnlyTheLastRemoves) {
  Borrow();
  EXPECT_FALSE(borrower_.AddDeserializedRef(ref_)) << "already a borrower";
  EXPECT_EQ(borrower_.BorrowedCount(ref_.id), 2);
  EXPECT_EQ(peers_.CallsOf(proto::ADD_BORROWERS), 1);
  borrower_.RemoveLocalRef(ref_);
  EXPECT_EQ(peers_.CallsOf(proto::REMOVE_BORROWERS), 0);
  borrower_.RemoveLocalRef(ref_);
  EXPECT_EQ(peers_.CallsOf(proto::REMOVE_BORROWERS), 1);
  EXPECT_EQ(Borrowers(), 0u);
}

TEST_F(RefTrackerTest, BorrowingAgainAfterTheLastCopyRegistersAgain) {
  Borrow();
  borrower_.RemoveLocalRef(ref_);
  Borrow();
  EXPECT_EQ(peers_.CallsOf(proto::ADD_BORROWERS), 2);
  EXPECT_EQ(Borrowers(), 1u);
}

TEST_F(RefTrackerTest, OwnedRefHeldInAValueLivesUntilTheValueIsReleased) {
  ObjectId value = ObjectId::Random();
  owner_.Hold(value, {&ref_, 1});
  owner_.RemoveLocalRef(ref_);
  EXPECT_FALSE(Freed()) << "a value containing it is alive";
  EXPECT_EQ(owner_.NumHolds(), 1u);
  owner_.Release(value);
  EXPECT_TRUE(Freed());
  EXPECT_EQ(owner_.NumHolds(), 0u);
}

TEST_F(RefTrackerTest, BorrowedRefHeldInAValueStaysBorrowedUntilTheValueIsReleased) {
  Borrow();
  ObjectId value = ObjectId::Random();
  borrower_.Hold(value, {&ref_, 1});  // the borrower returns the ref inside a value
  borrower_.RemoveLocalRef(ref_);     // ... and its own copy dies with the task
  owner_.RemoveLocalRef(ref_);
  EXPECT_FALSE(Freed());
  EXPECT_EQ(peers_.CallsOf(proto::REMOVE_BORROWERS), 0);
  borrower_.Release(value);
  EXPECT_TRUE(Freed());
}

TEST_F(RefTrackerTest, RefPassedOnSurvivesTheOwnerAndTheFirstBorrowerLettingGo) {
  // A -> B: A holds the ref inside the value it sends until the value is
  // freed; B registers while reading it; only then may A let go.
  RefTracker second(WorkerId::Random(), borrower_owned_, peers_);
  Borrow();
  ObjectId value = ObjectId::Random();
  borrower_.Hold(value, {&ref_, 1});
  borrower_.RemoveLocalRef(ref_);
  owner_.RemoveLocalRef(ref_);
  ASSERT_TRUE(second.AddDeserializedRef(ref_));
  ASSERT_TRUE(second.RegisterBorrows({&ref_, 1}, Deadline::After(std::chrono::seconds(5))).ok());
  borrower_.Release(value);
  EXPECT_FALSE(Freed()) << "the second borrower holds it";
  EXPECT_EQ(Borrowers(), 1u);
  second.RemoveLocalRef(ref_);
  EXPECT_TRUE(Freed());
}

TEST_F(RefTrackerTest, ABorrowersDeathEndsItsBorrows) {
  Borrow();
  owner_.RemoveLocalRef(ref_);
  owner_.OnWorkerGone(borrower_id_);
  EXPECT_TRUE(Freed());
}

TEST_F(RefTrackerTest, TheDeathOfAHeldValuesOwnerReleasesItsHold) {
  // The owner process runs a task for a caller and returns a value holding
  // its own ref; the caller, which owns that value, dies unfreed.
  const WorkerId caller = WorkerId::Random();
  const ObjectId returned = ObjectId::Random(), other = ObjectId::Random();
  owner_.Hold(returned, {&ref_, 1});
  owner_.Hold(other, {&ref_, 1});
  owner_.TieHolds(caller, {&returned, 1});
  owner_.RemoveLocalRef(ref_);  // the owner's own handle goes
  EXPECT_EQ(owner_.NumHolds(), 2u);
  owner_.OnWorkerGone(WorkerId::Random());  // someone else: nothing changes
  EXPECT_EQ(owner_.NumHolds(), 2u);
  owner_.OnWorkerGone(caller);
  EXPECT_EQ(owner_.NumHolds(), 1u) << "only the caller's value is released";
  EXPECT_FALSE(Freed());
  owner_.Release(other);
  EXPECT_TRUE(Freed());
  owner_.OnWorkerGone(caller);  // again: a no-op
}

TEST_F(RefTrackerTest, AReleasedTiedHoldIsForgotten) {
  const WorkerId caller = WorkerId::Random();
  const ObjectId returned = ObjectId::Random();
  owner_.Hold(returned, {&ref_, 1});
  owner_.TieHolds(caller, {&returned, 1});
  owner_.Release(returned);           // the caller freed it (FREE_OBJECTS)
  owner_.Hold(returned, {&ref_, 1});  // the same id held again, untied
  owner_.OnWorkerGone(caller);
  EXPECT_EQ(owner_.NumHolds(), 1u);
  owner_.Release(returned);
}

TEST_F(RefTrackerTest, RegisteringWithAGoneOwnerIsNotAnError) {
  peers_.Disconnect("owner");
  ASSERT_TRUE(borrower_.AddDeserializedRef(ref_));
  EXPECT_TRUE(borrower_.RegisterBorrows({&ref_, 1}, Deadline::After(std::chrono::seconds(5))).ok());
}

TEST_F(RefTrackerTest, HoldForeverPinsAnOwnedRef) {
  owner_.HoldForever(ref_);
  owner_.RemoveLocalRef(ref_);
  EXPECT_FALSE(Freed());
  EXPECT_TRUE(owned_.GetCounts(ref_.id)->pinned);
}

TEST_F(RefTrackerTest, MalformedBorrowsAreRejected) {
  EXPECT_FALSE(owner_.HandleAddBorrowers("\xff\xff").ok());
  owner_.HandleRemoveBorrowers("\xff\xff");  // ignored
  EXPECT_FALSE(Freed());
}

}  // namespace
}  // namespace ferry::core
