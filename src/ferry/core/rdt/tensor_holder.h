// TensorHolder: the tensors of direct tensor transport in the process that
// holds them, and their moves in and out of it (docs/architecture.md, "Direct
// tensor transport").
//
// As a producer it keeps an RDT object's tensors in the tensor store (no
// copy), exports them to the one-sided transports the object names, answers
// the owner's SEND_TENSORS (a send on a collective group) and anyone's
// FETCH_TENSORS (the bytes inline, or copied into the object store), and
// drops them when the owner frees the object. As a receiver it produces the
// tensors of a task's RDT argument: its own (same tensors, no copy), pulled
// through a one-sided export, fetched inline, or received on a group. It is
// also this process's member side of collective groups (JOIN_GROUP,
// LEAVE_GROUP). A transport failure destroys the group it happened in; the
// error names it, and later use of the group says it was destroyed until it
// is joined again.
//
// Seams: the peers it calls (PeerMessenger), how one-sided transports are
// made and how a group is joined (Dependencies), so that the protocol runs
// in one process against fake transports in tests.
//
// Threads: requests arrive through Serve on the io thread; sends and
// receives complete on the transports' threads; pulls for task arguments
// run on the holder's transfer thread ("ferry-transfer"), group joins on its
// collective thread ("ferry-collective"). Received tensors come from the CPU
// allocator, never from a language: no thread here needs the GIL.
//
// THREAD CONTRACT: thread-safe. Serve, Receive, Store and Drop do not block.
// Pull and FetchToObjectStore block up to their deadline (not on the io
// thread). Callbacks fire exactly once, never under a lock of the holder.
//
//   TensorHolder holder(deps);
//   FERRY_RETURN_IF_ERROR(holder.Store(id, std::move(tensors), &rdt_info));
//   holder.Receive(task_arg, value, [](StatusOr<std::vector<tensor::Tensor>> t) { ... });
//   holder.Drop(id);                       // the owner freed the object
//   holder.Shutdown();
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ferry/collective/group_manager.h"
#include "ferry/common/clock.h"
#include "ferry/common/id.h"
#include "ferry/common/thread_annotations.h"
#include "ferry/common/work_queue.h"
#include "ferry/core/argument_resolver.h"
#include "ferry/core/peer_messenger.h"
#include "ferry/core/transfer_log.h"
#include "ferry/object/readable_value.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/tensor/cpu_allocator.h"
#include "ferry/tensor/tensor_store.h"
#include "ferry/transport/one_sided_transport.h"

namespace ferry::core::rdt {

// The answer to a served request: its status and, when OK, the reply
// message (valid only during the call). Called exactly once.
using ServeReplyFn = std::function<void(const Status&, const google::protobuf::MessageLite* reply)>;
// The tensors of one RDT argument, or why they could not be had.
using TensorsFn = std::function<void(StatusOr<std::vector<tensor::Tensor>>)>;

class TensorHolder {
 public:
  struct Dependencies {
    // This process's address: the producer address of what it stores.
    std::string address;
    // The actor this process hosts (binary id); empty in a driver.
    std::string actor_id;
    tensor::TensorStore* store = nullptr;
    tensor::CpuAllocator* allocator = nullptr;
    PeerMessenger* peers = nullptr;
    // Makes the one-sided transport `name` (once per name and process).
    std::function<StatusOr<std::unique_ptr<transport::OneSidedTransport>>(const std::string& name)>
        make_one_sided;
    // Writes tensors ("tensors" format, one buffer each) into this process's
    // object-store memory under `id`, for FETCH_TENSORS into the object store.
    std::function<StatusOr<proto::ObjectValueProto>(
        const ObjectId& id, const std::vector<std::span<const uint8_t>>& buffers)>
        write_value;
    // Joins this process to a group (blocks until every member met).
    std::function<Status(const proto::JoinGroup& request, collective::GroupManager& groups)>
        join_group;
  };

  explicit TensorHolder(Dependencies deps);
  ~TensorHolder();
  TensorHolder(const TensorHolder&) = delete;
  TensorHolder& operator=(const TensorHolder&) = delete;

  // The request methods Serve answers.
  static const std::vector<uint16_t>& ServedMethods();
  // Answers one request of a ServedMethods() method.
  void Serve(uint16_t method, std::string_view payload, ServeReplyFn reply);

  // --- producer side
  // Keeps `tensors` under `id` (an RDT return or put). `info` names the
  // transport and the tensors' metadata; this fills in the producer and, for
  // a one-sided transport, what it exported (a CPU object of a built-in
  // two-sided transport also gets an shm export, so that a receiver on this
  // host reads it without a message: every small one, and any one whose
  // group's two ranks share the host).
  Status Store(const ObjectId& id, std::vector<tensor::Tensor> tensors, proto::RdtInfo* info);
  // Removes an object's tensors and releases what was exported for them.
  void Drop(const ObjectId& id);

  // --- receiver side
  // The tensors of RDT task argument `arg` whose value is `value`.
  void Receive(const proto::TaskArg& arg, const ValuePtr& value, TensorsFn done);
  // The tensors of one-sided RDT values (their producers' exports), pulled
  // concurrently; a value this process produced yields its stored tensors
  // without a copy. One entry per value, in order.
  StatusOr<std::vector<std::vector<tensor::Tensor>>> Pull(std::span<const ObjectId> ids,
                                                          std::span<const ValuePtr> values,
                                                          Deadline deadline);
  // Asks the producer of RDT `value` to copy its tensors into the object
  // store; returns that value (one buffer per tensor).
  StatusOr<std::shared_ptr<object::ReadableValue>> FetchToObjectStore(
      const ObjectId& id, const proto::ObjectValueProto& value, Deadline deadline);

  collective::GroupManager& groups() { return groups_; }
  const TransferLog& transfer_log() const { return log_; }

  // Aborts every group and stops the holder's threads; idempotent.
  void Shutdown();

 private:
  void ServeSend(std::string_view payload, ServeReplyFn reply);
  void ServeFetch(std::string_view payload, ServeReplyFn reply);
  void ServeJoin(std::string_view payload, ServeReplyFn reply);
  StatusOr<std::vector<tensor::Tensor>> Held(const std::string& object_id);
  StatusOr<transport::OneSidedTransport*> OneSided(const std::string& name)
      FERRY_EXCLUDES(transports_mu_);
  void ExportForThisHost(const std::vector<tensor::Tensor>& tensors, proto::RdtInfo* info,
                         std::vector<transport::OneSidedTransport*>* exporters);
  void ReceiveOnGroup(const ObjectId& id, const proto::TensorRecv& recv, const ValuePtr& value,
                      TensorsFn done);
  void FetchInline(const ObjectId& id, const ValuePtr& value, TensorsFn done);
  // A pull for a task argument: on the transfer thread (a small shm pull in
  // place).
  void PullArgument(const ObjectId& id, const ValuePtr& value, TensorsFn done);

  const Dependencies deps_;
  TransferLog log_;
  collective::GroupManager groups_;
  // Pulls for task arguments run here, never on the io thread.
  WorkQueue transfer_queue_;
  // Group joins wait for every member: kept off the other queues.
  WorkQueue collective_queue_;

  Mutex transports_mu_;
  std::map<std::string, std::unique_ptr<transport::OneSidedTransport>> one_sided_
      FERRY_GUARDED_BY(transports_mu_);
  // One-sided transports that exported each stored object (to Release).
  std::unordered_map<ObjectId, std::vector<transport::OneSidedTransport*>> exported_
      FERRY_GUARDED_BY(transports_mu_);
};

}  // namespace ferry::core::rdt
