#include "ferry/core/state_reporter.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "ferry/core/rdt/transfer_util.h"
#include "ferry/rpc/parse.h"

namespace ferry::core {
namespace {

// What an owned object is now, from the value the owner keeps (none yet:
// its task has not returned).
void DescribeValue(const proto::ObjectValueProto* value, proto::OwnedObjectState* out) {
  if (value == nullptr) {
    out->set_kind("pending");
  } else if (value->has_error()) {
    out->set_kind("error");
  } else if (value->has_rdt()) {
    out->set_kind("rdt");
    out->set_transport(value->rdt().transport());
    out->set_producer_address(value->rdt().producer_address());
    out->set_size(rdt::TotalBytes(value->rdt()));
  } else {
    out->set_kind(value->has_shm() ? "shm" : "inline");
    out->set_size(value->data_size());
  }
}

double SecondsSince(Clock::time_point t, Clock::time_point now) {
  return std::chrono::duration<double>(now - t).count();
}

}  // namespace

void StateReporter::Register(rpc::Dispatcher& dispatcher) {
  dispatcher.Register(proto::GET_STATE, [this](const std::shared_ptr<rpc::Channel>&,
                                               std::string_view payload, rpc::Responder responder) {
    proto::StateRequest request;
    if (!rpc::ParseRequest(payload, &request, responder)) return;
    responder.Reply(Collect(request));
  });
}

void StateReporter::Attach(Started started) {
  MutexLock lock(mu_);
  started_ = started;
}

proto::ProcessState StateReporter::Collect(const proto::StateRequest& request) const {
  const size_t max_objects = request.max_objects() == 0 ? kDefaultMaxObjects
                                                        : request.max_objects();
  proto::ProcessState state;
  state.set_worker_id(identity_.worker_id.Hex());
  state.set_pid(getpid());
  state.set_is_driver(identity_.is_driver);
  if (!identity_.actor_id.IsNil()) state.set_actor_id(identity_.actor_id.Hex());

  const uint64_t inline_bytes = AddOwned(max_objects, &state);
  for (const tensor::TensorStore::Entry& e : tensors_.List(max_objects)) {
    proto::StoredTensorsState* t = state.add_stored_tensors();
    t->set_object_id(e.id.Hex());
    t->set_num_tensors(static_cast<int32_t>(e.num_tensors));
    t->set_size(e.bytes);
    t->set_device(e.device);
  }
  state.set_tensor_store_bytes(tensors_.GetStats().bytes);
  state.set_object_store_bytes(inline_bytes + segments_.Bytes());

  Started started;
  {
    MutexLock lock(mu_);
    started = started_;
  }
  if (started.tracker != nullptr) {
    for (const RefTracker::BorrowedRef& b : started.tracker->ListBorrowed(max_objects)) {
      proto::BorrowedRefState* r = state.add_borrowed();
      r->set_object_id(b.id.Hex());
      r->set_owner_worker_id(b.owner_id.Hex());
      r->set_owner_address(b.owner_address);
      r->set_local_refs(b.copies);
    }
  }
  if (started.holder != nullptr) {
    AddTransfers(started.holder->transfer_log(), request.max_transfers(), &state);
  }
  const Timeline::Totals totals = timeline_.totals();
  state.set_tasks_run(totals.tasks);
  state.set_tasks_failed(totals.task_failures);
  state.set_calls_made(totals.calls);
  AddGroups(started, &state);
  if (request.timeline()) AddTimeline(&state);
  return state;
}

void StateReporter::AddTimeline(proto::ProcessState* state) const {
  for (const TaskSpan& t : timeline_.Tasks()) {
    proto::TaskSpanState* s = state->add_tasks();
    s->set_task_id(t.task_id.Hex());
    s->set_method(t.method);
    if (!t.caller.IsNil()) s->set_caller_worker_id(t.caller.Hex());
    if (!t.first_return.IsNil()) s->set_first_return(t.first_return.Hex());
    s->set_arrived_us(t.arrived_us);
    s->set_resolved_us(t.resolved_us);
    s->set_started_us(t.started_us);
    s->set_finished_us(t.finished_us);
  }
  for (const CallSpan& c : timeline_.Calls()) {
    proto::CallSpanState* s = state->add_calls();
    s->set_task_id(c.task_id.Hex());
    s->set_method(c.method);
    s->set_actor_id(c.actor.Hex());
    s->set_submitted_us(c.submitted_us);
    s->set_replied_us(c.replied_us);
  }
  state->set_timeline_dropped(timeline_.dropped());
}

// Adds the owned objects, oldest first; returns the inline bytes among them
// (those in shared memory are counted by the segments that hold them).
uint64_t StateReporter::AddOwned(size_t max, proto::ProcessState* state) const {
  state->set_num_owned(owned_.NumTracked());
  const Clock::time_point now = Clock::now();
  uint64_t inline_bytes = 0;
  for (const object::ReferenceCounter::Tracked& t : owned_.List(max)) {
    proto::OwnedObjectState* o = state->add_owned();
    o->set_object_id(t.id.Hex());
    object::MemoryStore::Value value = values_.GetIfReady(t.id);
    DescribeValue(value.get(), o);
    if (o->kind() == "inline") inline_bytes += o->size();
    o->set_local_refs(t.counts.local);
    o->set_submitted_task_refs(t.counts.submitted);
    for (const WorkerId& w : t.borrowers) o->add_borrowers(w.Hex());
    o->set_pinned(t.counts.pinned);
    o->set_age_s(SecondsSince(t.created, now));
  }
  return inline_bytes;
}

void StateReporter::AddTransfers(const TransferLog& log, size_t max, proto::ProcessState* state) {
  std::vector<TransferRecord> records = log.Recent();
  state->set_num_transfers(log.total());
  for (const TransferLog::Totals& sum : log.Sums()) {
    proto::TransferTotals* t = state->add_transfer_totals();
    t->set_transport(sum.transport);
    t->set_direction(sum.direction);
    t->set_count(sum.count);
    t->set_bytes(sum.bytes);
    t->set_failures(sum.failures);
  }
  const size_t skip = (max == 0 || records.size() <= max) ? 0 : records.size() - max;
  for (size_t i = skip; i < records.size(); ++i) {
    const TransferRecord& r = records[i];
    proto::TransferState* t = state->add_transfers();
    t->set_object_id(r.object_id.Hex());
    t->set_transport(r.transport);
    t->set_direction(r.direction);
    t->set_peer(r.peer);
    t->set_size(r.bytes);
    t->set_micros(r.micros);
    t->set_setup_micros(r.setup_micros);
    t->set_end_time_s(std::chrono::duration<double>(r.end_time.time_since_epoch()).count());
    t->set_pooled(r.pooled);
    t->set_reason(r.reason);
    t->set_error(r.error);
  }
}

void StateReporter::AddGroups(Started started, proto::ProcessState* state) {
  if (started.holder != nullptr) {
    for (const collective::GroupManager::Membership& m : started.holder->groups().List()) {
      proto::GroupState* g = state->add_groups();
      g->set_name(m.join.name());
      g->set_backend(m.join.backend());
      g->set_rank(m.join.rank());
      g->set_world_size(m.join.size());
      if (!m.destroyed.ok()) g->set_destroyed(m.destroyed.message());
    }
  }
  if (started.owner != nullptr) {
    for (const rdt::CollectiveGroup& c : started.owner->Groups()) {
      proto::GroupState* g = state->add_created_groups();
      g->set_name(c.name);
      g->set_backend(c.backend);
      g->set_world_size(static_cast<int32_t>(c.members.size()));
      for (const ActorId& a : c.members) g->add_members(a.Hex());
    }
  }
}

}  // namespace ferry::core
