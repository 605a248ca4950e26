#include "ferry/core/state_reporter.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "ferry/core/fake_peer_messenger.h"
#include "ferry/object/segment_pool.h"

namespace ferry::core {
namespace {

tensor::Tensor MakeTensor(uint64_t nbytes) {
  auto owner = std::make_shared<std::vector<char>>(nbytes);
  proto::TensorMetaProto meta;
  meta.set_device("cpu");
  return tensor::Tensor::Wrap(owner->data(), nbytes, std::move(meta), owner);
}

std::shared_ptr<const proto::ObjectValueProto> InlineValue(uint64_t size) {
  auto v = std::make_shared<proto::ObjectValueProto>();
  v->set_format("raw");
  v->set_data_size(size);
  v->set_inline_data(std::string(size, 'x'));
  return v;
}

class StateReporterTest : public testing::Test {
 protected:
  const proto::OwnedObjectState* Find(const proto::ProcessState& state, const ObjectId& id) {
    for (const auto& o : state.owned()) {
      if (o.object_id() == id.Hex()) return &o;
    }
    return nullptr;
  }

  const WorkerId self_ = WorkerId::Random();
  object::ReferenceCounter owned_{nullptr};
  object::MemoryStore values_;
  object::SegmentPool pool_{0};
  object::LocalSegments segments_{pool_};
  tensor::TensorStore tensors_;
  Timeline timeline_{4};
  StateReporter reporter_{{.worker_id = self_, .actor_id = ActorId(), .is_driver = true},
                          owned_,
                          values_,
                          segments_,
                          tensors_,
                          timeline_};
};

TEST_F(StateReporterTest, SaysWhatKeepsEachOwnedObjectAliveOldestFirst) {
  const ObjectId pending = ObjectId::Random(), small = ObjectId::Random(), rdt = ObjectId::Random(),
                 failed = ObjectId::Random();
  for (const ObjectId& id : {pending, small, rdt, failed})
    ASSERT_TRUE(owned_.AddOwnedObject(id).ok());
  owned_.AddLocalRef(pending);
  owned_.AddLocalRef(small);
  owned_.AddLocalRef(small);
  const ObjectId arg[] = {small};
  owned_.AddSubmittedTaskRefs(arg);
  const WorkerId borrower = WorkerId::Random();
  owned_.AddBorrower(rdt, borrower);
  owned_.Pin(failed);

  values_.Put(small, InlineValue(40));
  auto rdt_value = std::make_shared<proto::ObjectValueProto>();
  rdt_value->mutable_rdt()->set_transport("gloo");
  rdt_value->mutable_rdt()->set_producer_address("unix:@producer");
  rdt_value->mutable_rdt()->add_tensors()->set_nbytes(1000);
  rdt_value->mutable_rdt()->add_tensors()->set_nbytes(24);
  values_.Put(rdt, rdt_value);
  auto error = std::make_shared<proto::ObjectValueProto>();
  error->mutable_error()->set_message("boom");
  values_.Put(failed, error);

  proto::ProcessState state = reporter_.Collect({});
  EXPECT_EQ(state.worker_id(), self_.Hex());
  EXPECT_TRUE(state.is_driver());
  EXPECT_EQ(state.num_owned(), 4u);
  ASSERT_EQ(state.owned_size(), 4);
  EXPECT_EQ(state.owned(0).object_id(), pending.Hex()) << "oldest first";
  EXPECT_GE(state.owned(0).age_s(), state.owned(3).age_s());

  EXPECT_EQ(Find(state, pending)->kind(), "pending");
  EXPECT_EQ(Find(state, pending)->local_refs(), 1);
  const proto::OwnedObjectState* s = Find(state, small);
  EXPECT_EQ(s->kind(), "inline");
  EXPECT_EQ(s->size(), 40u);
  EXPECT_EQ(s->local_refs(), 2);
  EXPECT_EQ(s->submitted_task_refs(), 1);
  const proto::OwnedObjectState* r = Find(state, rdt);
  EXPECT_EQ(r->kind(), "rdt");
  EXPECT_EQ(r->transport(), "gloo");
  EXPECT_EQ(r->producer_address(), "unix:@producer");
  EXPECT_EQ(r->size(), 1024u);
  ASSERT_EQ(r->borrowers_size(), 1);
  EXPECT_EQ(r->borrowers(0), borrower.Hex());
  EXPECT_EQ(Find(state, failed)->kind(), "error");
  EXPECT_TRUE(Find(state, failed)->pinned());
  EXPECT_EQ(state.object_store_bytes(), 40u) << "inline values, no segments";
}

TEST_F(StateReporterTest, ListsAtMostTheRequestedNumberButCountsAll) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(owned_.AddOwnedObject(ObjectId::Random()).ok());
  proto::StateRequest request;
  request.set_max_objects(2);
  proto::ProcessState state = reporter_.Collect(request);
  EXPECT_EQ(state.owned_size(), 2);
  EXPECT_EQ(state.num_owned(), 5u);
}

TEST_F(StateReporterTest, ReportsStoredTensorsAndSharedMemory) {
  const ObjectId id = ObjectId::Random();
  ASSERT_TRUE(tensors_.Put(id, {MakeTensor(100), MakeTensor(28)}).ok());
  auto segment = object::ShmSegment::Create(4096);
  ASSERT_TRUE(segment.ok());
  ASSERT_TRUE(segments_.Put(ObjectId::Random(), std::move(*segment)).ok());

  proto::ProcessState state = reporter_.Collect({});
  ASSERT_EQ(state.stored_tensors_size(), 1);
  EXPECT_EQ(state.stored_tensors(0).object_id(), id.Hex());
  EXPECT_EQ(state.stored_tensors(0).num_tensors(), 2);
  EXPECT_EQ(state.stored_tensors(0).size(), 128u);
  EXPECT_EQ(state.stored_tensors(0).device(), "cpu");
  EXPECT_EQ(state.tensor_store_bytes(), 128u);
  EXPECT_GE(state.object_store_bytes(), 4096u);
}

TEST_F(StateReporterTest, ListsBorrowedRefsOnceAttached) {
  FakePeerMessenger peers;
  RefTracker tracker(self_, owned_, peers);
  ObjectRef ref{ObjectId::Random(), "unix:@owner", WorkerId::Random()};
  ASSERT_TRUE(tracker.AddDeserializedRef(ref));
  tracker.AddLocalRef(ref);

  EXPECT_EQ(reporter_.Collect({}).borrowed_size(), 0) << "not attached yet";
  reporter_.Attach({.tracker = &tracker});
  proto::ProcessState state = reporter_.Collect({});
  ASSERT_EQ(state.borrowed_size(), 1);
  EXPECT_EQ(state.borrowed(0).object_id(), ref.id.Hex());
  EXPECT_EQ(state.borrowed(0).owner_worker_id(), ref.owner_id.Hex());
  EXPECT_EQ(state.borrowed(0).owner_address(), "unix:@owner");
  EXPECT_EQ(state.borrowed(0).local_refs(), 2);
  tracker.RemoveLocalRef(ref);
  tracker.RemoveLocalRef(ref);
  EXPECT_EQ(reporter_.Collect({}).borrowed_size(), 0);
}

TEST_F(StateReporterTest, ReportsTheCountsSinceTheProcessStarted) {
  timeline_.CountTask(false);
  timeline_.CountTask(true);
  timeline_.CountCall();
  proto::ProcessState state = reporter_.Collect({});
  EXPECT_EQ(state.tasks_run(), 2u);
  EXPECT_EQ(state.tasks_failed(), 1u);
  EXPECT_EQ(state.calls_made(), 1u);
}

TEST_F(StateReporterTest, IncludesTheTimelineOnlyWhenAsked) {
  TaskSpan task;
  task.task_id = TaskId::Random();
  task.method = "step";
  task.first_return = ObjectId::Random();
  task.arrived_us = 10;
  task.resolved_us = 20;
  task.started_us = 30;
  task.finished_us = 40;
  timeline_.AddTask(task);
  timeline_.AddCall(CallSpan{TaskId::Random(), "step", ActorId::Random(), 5, 45});

  EXPECT_EQ(reporter_.Collect({}).tasks_size(), 0);
  proto::StateRequest request;
  request.set_timeline(true);
  proto::ProcessState state = reporter_.Collect(request);
  ASSERT_EQ(state.tasks_size(), 1);
  EXPECT_EQ(state.tasks(0).task_id(), task.task_id.Hex());
  EXPECT_EQ(state.tasks(0).first_return(), task.first_return.Hex());
  EXPECT_EQ(state.tasks(0).caller_worker_id(), "") << "nil ids are left empty";
  EXPECT_EQ(state.tasks(0).resolved_us(), 20);
  EXPECT_EQ(state.tasks(0).finished_us(), 40);
  ASSERT_EQ(state.calls_size(), 1);
  EXPECT_EQ(state.calls(0).method(), "step");
  EXPECT_EQ(state.calls(0).replied_us(), 45);
}

}  // namespace
}  // namespace ferry::core
