// The direct-tensor-transport protocol between an owner and the processes
// holding tensors, run in one process: a TransferOwner and one TensorHolder
// per actor, wired by a FakePeerMessenger, moving bytes over the fake
// two-sided group transport and the fake one-sided fabric.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <set>

#include "ferry/core/error_value.h"
#include "ferry/core/fake_peer_messenger.h"
#include "ferry/core/rdt/tensor_holder.h"
#include "ferry/core/rdt/transfer_owner.h"
#include "ferry/transport/fake_one_sided_transport.h"
#include "ferry/transport/fake_transport.h"

namespace ferry::core::rdt {
namespace {

using std::chrono::seconds;

// Bigger than FERRY_INLINE_TENSOR_BYTES: moves on the group, not inline.
constexpr size_t kLargeFloats = 256 * 1024;

tensor::Tensor Floats(size_t n, float first) {
  auto data = std::make_shared<std::vector<float>>(n);
  for (size_t i = 0; i < n; ++i) (*data)[i] = first + static_cast<float>(i % 1000);
  proto::TensorMetaProto meta;
  meta.set_dtype("float32");
  meta.add_shape(static_cast<int64_t>(n));
  meta.set_device("cpu");
  return tensor::Tensor::Wrap(data->data(), n * sizeof(float), meta, data);
}

bool SameBytes(const tensor::Tensor& a, const tensor::Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

// Who is alive and where, as the Head would say.
class TableDirectory : public ActorDirectory {
 public:
  void Add(const ActorId& actor, std::string address) {
    std::lock_guard<std::mutex> lock(mu_);
    addresses_[actor] = std::move(address);
  }
  void Kill(const ActorId& actor) {
    std::lock_guard<std::mutex> lock(mu_);
    dead_.insert(actor);
  }
  bool IsDead(const ActorId& actor, Status* cause) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (dead_.count(actor) == 0) return false;
    *cause = Status::Unavailable("the actor's process exited");
    return true;
  }
  StatusOr<std::string> Address(const ActorId& actor, bool, Deadline) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (dead_.count(actor) != 0) return Status::Unavailable("dead");
    return addresses_.at(actor);
  }
  // Unknown ("") unless set: transfers then take the group, as between hosts.
  void SetHost(const ActorId& actor, std::string host) {
    std::lock_guard<std::mutex> lock(mu_);
    hosts_[actor] = std::move(host);
  }
  StatusOr<std::string> Host(const ActorId& actor, Deadline) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = hosts_.find(actor);
    return it == hosts_.end() ? std::string() : it->second;
  }

 private:
  std::mutex mu_;
  std::map<ActorId, std::string> addresses_;
  std::map<ActorId, std::string> hosts_;
  std::set<ActorId> dead_;
};

// One fake group transport per group instance (its rendezvous prefix).
class FakeGroups {
 public:
  Status Join(const proto::JoinGroup& req, collective::GroupManager& groups) {
    std::unique_ptr<transport::TwoSidedTransport> t;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& group = groups_[req.kv_prefix()];
      if (!group) group = std::make_unique<transport::FakeTransportGroup>(req.size());
      last_ = group.get();
      t = group->Transport(req.rank());
    }
    groups.Adopt(req.name(), std::shared_ptr<transport::TwoSidedTransport>(std::move(t)));
    return Status::Ok();
  }
  transport::FakeTransportGroup& last() {
    std::lock_guard<std::mutex> lock(mu_);
    return *last_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<transport::FakeTransportGroup>> groups_;
  transport::FakeTransportGroup* last_ = nullptr;
};

// One actor process: its tensor store and holder, served at `address`.
struct Actor {
  ActorId id = ActorId::Random();
  std::string address;
  tensor::TensorStore store;
  tensor::CpuAllocator allocator;
  std::unique_ptr<TensorHolder> holder;
};

class TensorTransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    owner_ = std::make_unique<TransferOwner>(self_, owner_store_, directory_, peers_);
    for (auto* actor : {&a_, &b_}) {
      actor->address = "actor-" + actor->id.Hex();
      TensorHolder::Dependencies deps;
      deps.address = actor->address;
      deps.actor_id = actor->id.Binary();
      deps.store = &actor->store;
      deps.allocator = &actor->allocator;
      deps.peers = &peers_;
      deps.make_one_sided =
          [this, actor](
              const std::string& name) -> StatusOr<std::unique_ptr<transport::OneSidedTransport>> {
        if (name != "nixl") return Status::Unimplemented(name + " is not in this test");
        return fabric_.Transport(name, actor->address);
      };
      deps.write_value = [](const ObjectId&, const std::vector<std::span<const uint8_t>>&)
          -> StatusOr<proto::ObjectValueProto> { return Status::Unimplemented("no object store"); };
      deps.join_group = [this](const proto::JoinGroup& req, collective::GroupManager& groups) {
        return groups_.Join(req, groups);
      };
      actor->holder = std::make_unique<TensorHolder>(std::move(deps));
      TensorHolder* holder = actor->holder.get();
      peers_.Serve(actor->address, [holder](uint16_t method, std::string_view payload,
                                            FakePeerMessenger::Reply reply) {
        holder->Serve(method, payload, std::move(reply));
      });
      directory_.Add(actor->id, actor->address);
    }
  }

  void TearDown() override {
    a_.holder->Shutdown();
    b_.holder->Shutdown();
  }

  // `producer` returned `tensors` from a task this owner submitted with
  // `transport`: the value the owner then holds.
  // With `shm_export`, the value also gets the shm export a real producer
  // adds to CPU objects (this test's producers have no shm transport).
  ObjectRef Produce(Actor& producer, std::vector<tensor::Tensor> tensors,
                    const std::string& transport, bool shm_export = false) {
    ObjectRef ref{ObjectId::Random(), "owner", self_};
    owner_->Track(std::span<const ObjectId>(&ref.id, 1), producer.id, transport);
    proto::ObjectValueProto value;
    value.mutable_rdt()->set_transport(transport);
    for (const auto& t : tensors) *value.mutable_rdt()->add_tensors() = t.meta();
    EXPECT_TRUE(producer.holder->Store(ref.id, std::move(tensors), value.mutable_rdt()).ok());
    if (shm_export) value.mutable_rdt()->add_exports()->set_transport("shm");
    owner_store_.Put(ref.id, std::make_shared<const proto::ObjectValueProto>(std::move(value)));
    return ref;
  }

  // Submits a task to `target` taking `refs`: the arguments the owner makes.
  std::vector<proto::TaskArg> Submit(const std::vector<ObjectRef>& refs, const ActorId& target,
                                     std::vector<std::string>* warnings = nullptr) {
    EXPECT_TRUE(owner_->NoteUses(refs, target, warnings).empty());
    std::vector<proto::TaskArg> args(refs.size());
    for (size_t i = 0; i < refs.size(); ++i) {
      args[i].set_object_id(refs[i].id.Binary());
      owner_->FillArgument(refs[i].id, owner_store_.GetIfReady(refs[i].id), target, &args[i]);
    }
    return args;
  }

  // What the task's actor gets for `arg`.
  StatusOr<std::vector<tensor::Tensor>> Receive(Actor& actor, const proto::TaskArg& arg) {
    auto done = std::make_shared<std::promise<StatusOr<std::vector<tensor::Tensor>>>>();
    auto future = done->get_future();
    auto value = std::make_shared<const proto::ObjectValueProto>(arg.value());
    actor.holder->Receive(arg, value, [done](StatusOr<std::vector<tensor::Tensor>> t) {
      done->set_value(std::move(t));
    });
    if (future.wait_for(seconds(30)) != std::future_status::ready) {
      return Status::DeadlineExceeded("the receive did not complete");
    }
    return future.get();
  }

  void CreateGroup(const std::string& name) {
    ASSERT_TRUE(owner_->CreateGroup(name, "gloo", {a_.id, b_.id}).ok());
  }

  const WorkerId self_ = WorkerId::Random();
  object::MemoryStore owner_store_;
  TableDirectory directory_;
  FakePeerMessenger peers_;
  transport::FakeOneSidedFabric fabric_;
  FakeGroups groups_;
  std::unique_ptr<TransferOwner> owner_;
  Actor a_, b_;
};

TEST_F(TensorTransferTest, PassedToItsProducerItIsTheSameTensorWithoutACopy) {
  tensor::Tensor t = Floats(kLargeFloats, 1);
  ObjectRef ref = Produce(a_, {t}, "gloo");
  auto args = Submit({ref}, a_.id);
  EXPECT_FALSE(args[0].has_tensor_recv());
  auto got = Receive(a_, args[0]);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].data(), t.data());
  EXPECT_EQ(peers_.CallsOf(proto::SEND_TENSORS), 0);
}

TEST_F(TensorTransferTest, TwoSidedTransferSendsFromTheProducerOverTheSharedGroup) {
  CreateGroup("g");
  tensor::Tensor t = Floats(kLargeFloats, 2);
  ObjectRef ref = Produce(a_, {t}, "gloo");
  auto args = Submit({ref}, b_.id);
  ASSERT_TRUE(args[0].has_tensor_recv());
  EXPECT_EQ(args[0].tensor_recv().group(), "g");
  EXPECT_EQ(args[0].tensor_recv().src_rank(), 0);
  EXPECT_EQ(peers_.CallsOf(proto::SEND_TENSORS), 1);
  auto got = Receive(b_, args[0]);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_NE((*got)[0].data(), t.data());
  EXPECT_TRUE(SameBytes((*got)[0], t));
  EXPECT_EQ(b_.holder->transfer_log().Recent().back().transport, "gloo");
}

TEST_F(TensorTransferTest, RanksOnOneHostAreToldToReadTheProducersMemoryWithoutASend) {
  directory_.SetHost(a_.id, "host-1");
  directory_.SetHost(b_.id, "host-1");
  CreateGroup("g");
  ObjectRef ref = Produce(a_, {Floats(kLargeFloats, 2)}, "gloo", /*shm_export=*/true);
  auto args = Submit({ref}, b_.id);
  ASSERT_TRUE(args[0].has_tensor_recv());
  EXPECT_TRUE(args[0].tensor_recv().inline_fetch());
  EXPECT_EQ(args[0].tensor_recv().group(), "g");  // still required, and failures destroy it
  EXPECT_EQ(peers_.CallsOf(proto::SEND_TENSORS), 0);
}

TEST_F(TensorTransferTest, RanksOnTwoHostsOrWithoutAnShmExportUseTheGroup) {
  directory_.SetHost(a_.id, "host-1");
  directory_.SetHost(b_.id, "host-2");
  CreateGroup("g");
  ObjectRef across = Produce(a_, {Floats(kLargeFloats, 2)}, "gloo", /*shm_export=*/true);
  EXPECT_FALSE(Submit({across}, b_.id)[0].tensor_recv().inline_fetch());
  ASSERT_TRUE(owner_->DestroyGroup("g").ok());
  directory_.SetHost(b_.id, "host-1");
  CreateGroup("g");
  ObjectRef unexported = Produce(a_, {Floats(kLargeFloats, 3)}, "gloo");
  EXPECT_FALSE(Submit({unexported}, b_.id)[0].tensor_recv().inline_fetch());
  EXPECT_EQ(peers_.CallsOf(proto::SEND_TENSORS), 2);
}

// FERRY_GLOO_SAME_HOST_PATH set for one scope (read when a group is made).
class SameHostPathSetting {
 public:
  explicit SameHostPathSetting(const char* value) { setenv("FERRY_GLOO_SAME_HOST_PATH", value, 1); }
  ~SameHostPathSetting() { unsetenv("FERRY_GLOO_SAME_HOST_PATH"); }
};

TEST_F(TensorTransferTest, TheTcpSettingKeepsSameHostRanksOnTheGroupAndABadOneIsRefused) {
  directory_.SetHost(a_.id, "host-1");
  directory_.SetHost(b_.id, "host-1");
  {
    SameHostPathSetting pigeon("pigeon");
    Status bad = owner_->CreateGroup("g", "gloo", {a_.id, b_.id});
    EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(bad.message().find("valid values: shm, tcp"), std::string::npos) << bad;
  }
  {
    SameHostPathSetting tcp("tcp");
    CreateGroup("g");
  }
  ObjectRef ref = Produce(a_, {Floats(kLargeFloats, 2)}, "gloo", /*shm_export=*/true);
  EXPECT_FALSE(Submit({ref}, b_.id)[0].tensor_recv().inline_fetch());
  EXPECT_EQ(peers_.CallsOf(proto::SEND_TENSORS), 1);
}

TEST_F(TensorTransferTest, TwoSidedTransferWithoutASharedGroupIsAClearError) {
  ObjectRef ref = Produce(a_, {Floats(kLargeFloats, 3)}, "gloo");
  auto args = Submit({ref}, b_.id);
  Status s = ValueStatus(args[0].value());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("create_collective_group"), std::string::npos) << s;
}

TEST_F(TensorTransferTest, OneSidedTransferIsPulledByTheReceiverWithoutAMessage) {
  tensor::Tensor t = Floats(kLargeFloats, 4);
  ObjectRef ref = Produce(a_, {t}, "nixl");
  EXPECT_EQ(fabric_.NumExported(), 1u);
  auto args = Submit({ref}, b_.id);
  EXPECT_FALSE(args[0].has_tensor_recv());
  auto got = Receive(b_, args[0]);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_NE((*got)[0].data(), t.data());
  EXPECT_TRUE(SameBytes((*got)[0], t));
  EXPECT_EQ(peers_.CallsOf(proto::SEND_TENSORS) + peers_.CallsOf(proto::FETCH_TENSORS), 0);
  a_.holder->Drop(ref.id);  // the owner freed it: the export goes too
  EXPECT_EQ(fabric_.NumExported(), 0u);
}

TEST_F(TensorTransferTest, TheSameRefTwiceInOneCallMovesTwiceWithDistinctTags) {
  CreateGroup("g");
  tensor::Tensor t = Floats(kLargeFloats, 5);
  ObjectRef ref = Produce(a_, {t}, "gloo");
  auto args = Submit({ref, ref}, b_.id);
  ASSERT_TRUE(args[0].has_tensor_recv() && args[1].has_tensor_recv());
  EXPECT_NE(args[0].tensor_recv().tag(), args[1].tensor_recv().tag());
  // Received in the other order: the tags, not the order, match them.
  auto second = Receive(b_, args[1]);
  auto first = Receive(b_, args[0]);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_TRUE(SameBytes((*first)[0], t));
  EXPECT_TRUE(SameBytes((*second)[0], t));
  // Twice to its producer: the same tensor both times.
  auto back = Submit({ref, ref}, a_.id);
  EXPECT_EQ(Receive(a_, back[0])->at(0).data(), t.data());
  EXPECT_EQ(Receive(a_, back[1])->at(0).data(), t.data());
}

TEST_F(TensorTransferTest, PassedToItsProducerAndAnotherActorItWarnsOnce) {
  CreateGroup("g");
  ObjectRef ref = Produce(a_, {Floats(kLargeFloats, 6)}, "gloo");
  std::vector<std::string> warnings;
  for (const ActorId& target : {a_.id, b_.id, b_.id, a_.id}) {
    auto args = Submit({ref}, target, &warnings);
    if (args[0].has_tensor_recv()) {
      ASSERT_TRUE(Receive(b_, args[0]).ok());
    }
  }
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("mutable"), std::string::npos);
}

TEST_F(TensorTransferTest, ARefFreedWhileItsTransferIsPendingStillArrivesWhole) {
  CreateGroup("g");
  tensor::Tensor t = Floats(kLargeFloats, 7);
  ObjectRef ref = Produce(a_, {t}, "gloo");
  auto args = Submit({ref}, b_.id);  // the producer's send is posted now
  owner_->Forget(ref.id);            // every ref died: the owner frees it
  a_.holder->Drop(ref.id);
  EXPECT_FALSE(a_.store.Get(ref.id).has_value());
  EXPECT_EQ(owner_->NumTracked(), 0u);
  auto got = Receive(b_, args[0]);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(SameBytes((*got)[0], t));
}

TEST_F(TensorTransferTest, AProducerThatFailedBeforeTheObjectExistedFailsTheTaskNotATransfer) {
  CreateGroup("g");
  // The producing task died with its actor: the owner holds an error value.
  ObjectRef ref{ObjectId::Random(), "owner", self_};
  owner_->Track(std::span<const ObjectId>(&ref.id, 1), a_.id, "gloo");
  owner_store_.Put(ref.id, std::make_shared<const proto::ObjectValueProto>(
                               MakeErrorValue(Status::Unavailable("the actor died"))));
  auto args = Submit({ref}, b_.id);
  EXPECT_EQ(ValueStatus(args[0].value()).code(), StatusCode::kUnavailable);
  EXPECT_FALSE(args[0].has_tensor_recv());
  // An object that exists in an actor that died since: the same, named.
  ObjectRef held = Produce(a_, {Floats(kLargeFloats, 8)}, "gloo");
  directory_.Kill(a_.id);
  auto later = Submit({held}, b_.id);
  Status s = ValueStatus(later[0].value());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("dead"), std::string::npos) << s;
  EXPECT_EQ(peers_.CallsOf(proto::SEND_TENSORS), 0);
}

TEST_F(TensorTransferTest, AFailedTransferDestroysTheGroupUntilItIsCreatedAgain) {
  CreateGroup("g");
  tensor::Tensor t = Floats(kLargeFloats, 9);
  ObjectRef ref = Produce(a_, {t}, "gloo");
  groups_.last().FailNextTransfer(Status::Aborted("injected link failure"));
  auto failed = Receive(b_, Submit({ref}, b_.id)[0]);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kAborted) << failed.status();
  EXPECT_NE(failed.status().message().find("collective group 'g'"), std::string::npos);
  // The owner forgot the group: later use says it was destroyed, at once.
  EXPECT_TRUE(owner_->Groups().empty());
  auto later = Submit({ref}, b_.id);
  Status s = ValueStatus(later[0].value());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("'g' was destroyed"), std::string::npos) << s;
  // Re-created, the same object moves again.
  ASSERT_TRUE(owner_->DestroyGroup("g").ok());
  CreateGroup("g");
  auto again = Receive(b_, Submit({ref}, b_.id)[0]);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(SameBytes((*again)[0], t));
}

TEST_F(TensorTransferTest, TwoSidedCallsNeedTheProducerInAGroupOfThatBackend) {
  Status s = owner_->CheckSubmission(a_.id, "gloo");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("create_collective_group"), std::string::npos) << s;
  EXPECT_TRUE(owner_->CheckSubmission(a_.id, "nixl").ok()) << "one-sided: no group needed";
  EXPECT_TRUE(owner_->CheckSubmission(a_.id, "").ok());
  CreateGroup("g");
  EXPECT_TRUE(owner_->CheckSubmission(a_.id, "gloo").ok());
}

TEST_F(TensorTransferTest, ATransferFailureSeenByTheReceiverMakesTheOwnerForgetTheGroup) {
  CreateGroup("g");
  const int leaves_before = peers_.CallsOf(proto::LEAVE_GROUP);
  std::vector<std::string> groups{"g"};
  owner_->OnTransferFailed(groups, Status::Aborted("injected"));
  EXPECT_TRUE(owner_->Groups().empty());
  EXPECT_EQ(peers_.CallsOf(proto::LEAVE_GROUP) - leaves_before, 2) << "both members leave";
  EXPECT_TRUE(owner_->DestroyGroup("g").ok()) << "the user's cleanup is not an error";
  CreateGroup("g");  // and the name can be used again
  EXPECT_EQ(owner_->Groups().size(), 1u);
}

TEST_F(TensorTransferTest, GroupsAreValidatedAndOwnedByTheirCreator) {
  EXPECT_EQ(owner_->CreateGroup("g", "carrier-pigeon", {a_.id, b_.id}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(owner_->CreateGroup("g", "gloo", {a_.id, a_.id}).code(), StatusCode::kInvalidArgument);
  CreateGroup("g");
  EXPECT_EQ(owner_->CreateGroup("g", "gloo", {a_.id, b_.id}).code(), StatusCode::kAlreadyExists);
  ASSERT_EQ(owner_->Groups().size(), 1u);
  EXPECT_EQ(owner_->Groups()[0].members, (std::vector<ActorId>{a_.id, b_.id}));
  EXPECT_EQ(owner_->DestroyGroup("other").code(), StatusCode::kNotFound);
}

TEST_F(TensorTransferTest, AMemberDyingDestroysItsGroupsAndTheOthersLeave) {
  CreateGroup("g");
  ASSERT_TRUE(owner_->CreateGroup("h", "gloo", {b_.id, a_.id}).ok());
  const int leaves_before = peers_.CallsOf(proto::LEAVE_GROUP);
  directory_.Kill(a_.id);
  owner_->OnActorDied(a_.id, Status::Unavailable("killed by the test"));
  EXPECT_TRUE(owner_->Groups().empty());
  // The live member was told to leave both groups; the dead one was not asked.
  EXPECT_EQ(peers_.CallsOf(proto::LEAVE_GROUP) - leaves_before, 2);
  // The user's own cleanup afterwards is not an error; an unknown name still is.
  EXPECT_TRUE(owner_->DestroyGroup("g").ok());
  EXPECT_EQ(owner_->DestroyGroup("g").code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace ferry::core::rdt
