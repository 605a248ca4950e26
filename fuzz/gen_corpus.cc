// Writes the seed corpora committed under fuzz/corpus/<target>/: a few valid
// messages and frames of every kind plus edge cases, encoded with ferry's own
// code so they track the wire format. Deterministic: rerunning it rewrites the
// same files (`make fuzz-corpus`).
//
//   fuzz_gen_corpus fuzz/corpus
//
// Input formats are those of the targets (see each target's header comment).
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "ferry/object/value_layout.h"
#include "ferry/proto/ferry.pb.h"
#include "ferry/rpc/frame.h"

namespace {

using namespace ferry;  // NOLINT: a generator over all of ferry's messages

const std::string kWorkerId = "fuzz-worker-0001";  // control_message_fuzz's fixed ids
const std::string kActorId = "fuzz-actor-00001";
const std::string kObjectId = "fuzz-object-0001";
const std::string kOtherId = "0123456789abcdef";

std::string g_root;
int g_written = 0;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  const std::string dir = g_root + "/" + target;
  ::mkdir(g_root.c_str(), 0755);
  ::mkdir(dir.c_str(), 0755);
  std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "gen_corpus: cannot write %s/%s\n", dir.c_str(), name.c_str());
    std::exit(1);
  }
  ++g_written;
}

// --- frame_decoder_fuzz -------------------------------------------------------
// FuzzedDataProvider takes integers from the end of the input and bytes from
// the front: the stream first, then the choices in reverse order of use.

std::string Frame(uint16_t method, rpc::FrameKind kind, uint64_t id, const std::string& payload) {
  return rpc::EncodeFrame(method, kind, id, payload).value();
}

std::string FrameSeed(const std::string& stream, bool zero_copy, uint8_t limit_index,
                      const std::vector<size_t>& chunks) {
  std::vector<uint8_t> used;  // in the order the target consumes them
  used.push_back(zero_copy ? 1 : 0);
  // ConsumeIntegralInRange(first, 9) with first = zero_copy: value = first + byte % (10 - first).
  used.push_back(static_cast<uint8_t>(limit_index - (zero_copy ? 1 : 0)));
  size_t total = 0;
  for (size_t c : chunks) {
    used.push_back(static_cast<uint8_t>(c >> 8));  // a 0..4096 range reads two bytes, high first
    used.push_back(static_cast<uint8_t>(c & 0xff));
    if (zero_copy) used.push_back(64);  // WritableTail(min_bytes = 64)
    total += c;
  }
  if (total != stream.size()) {
    std::fprintf(stderr, "gen_corpus: chunks cover %zu of %zu stream bytes\n", total,
                 stream.size());
    std::exit(1);
  }
  std::string seed = stream;
  for (auto it = used.rbegin(); it != used.rend(); ++it) seed.push_back(static_cast<char>(*it));
  return seed;
}

void FrameSeeds() {
  const std::string target = "frame_decoder_fuzz";
  proto::Hello hello;
  hello.set_token("token");
  hello.set_worker_id(kWorkerId);
  hello.set_address("unix:@ferry-fuzz");
  hello.set_pid(42);
  const std::string hello_frame = Frame(proto::HELLO, rpc::FrameKind::kRequest, 1,
                                        hello.SerializeAsString());
  proto::StatusProto status;
  status.set_code(14);
  status.set_message("gone");
  const std::string mixed = hello_frame + Frame(proto::HELLO, rpc::FrameKind::kReply, 1, "") +
                            Frame(proto::FREE_OBJECTS, rpc::FrameKind::kOneWay, 0, kObjectId) +
                            Frame(proto::GET_OBJECT, rpc::FrameKind::kErrorReply, 7,
                                  status.SerializeAsString());
  // Limit indices: 0 = 1 GiB (Feed only), 1 = 0, 2 = 1, 3 = 15, 4 = 16, 5 = 17,
  // 6 = 255, 7 = 4096, 8 = 65536, 9 = 1 MiB.
  Write(target, "hello_one_chunk", FrameSeed(hello_frame, false, 0, {hello_frame.size()}));
  std::vector<size_t> small;
  for (size_t left = mixed.size(); left > 0;) {
    const size_t c = std::min<size_t>(left, small.size() % 3 == 0 ? 1 : 7);
    small.push_back(c);
    left -= c;
  }
  Write(target, "four_kinds_small_chunks", FrameSeed(mixed, false, 0, small));
  Write(target, "four_kinds_zero_copy", FrameSeed(mixed, true, 8, {5, 20, mixed.size() - 25}));
  Write(target, "empty_payload_then_partial_header",
        FrameSeed(Frame(3, rpc::FrameKind::kOneWay, 0, "") + std::string(9, '\x01'), false, 1,
                  {25}));
  std::string bad_kind = Frame(3, rpc::FrameKind::kRequest, 5, "abc");
  bad_kind[6] = 4;
  Write(target, "unknown_kind",
        FrameSeed(hello_frame + bad_kind, false, 0, {hello_frame.size() + bad_kind.size()}));
  const std::string big = Frame(3, rpc::FrameKind::kRequest, 5, std::string(17, 'x'));
  Write(target, "payload_over_limit_16", FrameSeed(big, false, 4, {big.size()}));
  Write(target, "payload_at_limit_17_zero_copy", FrameSeed(big, true, 5, {3, big.size() - 3}));
  std::string huge_prefix = Frame(3, rpc::FrameKind::kRequest, 5, "");
  huge_prefix[0] = huge_prefix[1] = huge_prefix[2] = huge_prefix[3] = '\xff';
  Write(target, "length_prefix_4gib", FrameSeed(huge_prefix, false, 0, {huge_prefix.size()}));
  Write(target, "empty", "");
}

// --- value_layout_fuzz --------------------------------------------------------

proto::ObjectValueProto InlineValue(uint64_t data_size, std::initializer_list<uint64_t> buffers,
                                    const std::string& format = "pickle5") {
  std::vector<uint64_t> sizes(buffers);
  object::ValueLayout layout = object::ComputeLayout(data_size, sizes);
  proto::ObjectValueProto v;
  v.set_format(format);
  object::FillLayout(layout, &v);
  std::string bytes(layout.total_size, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>('a' + i % 26);
  v.set_inline_data(bytes);
  return v;
}

void LayoutSeeds() {
  const std::string target = "value_layout_fuzz";
  auto wire = [](const proto::ObjectValueProto& v) {
    return std::string(1, '\0') + v.SerializeAsString();
  };
  Write(target, "inline_data_only", wire(InlineValue(100, {})));
  Write(target, "inline_two_buffers", wire(InlineValue(100, {4096, 10})));
  Write(target, "inline_empty_buffers", wire(InlineValue(0, {0, 0, 64})));
  proto::ObjectValueProto v = InlineValue(100, {64});
  v.set_buffer_offsets(0, 104);
  Write(target, "misaligned_offset", wire(v));
  v = InlineValue(100, {64});
  v.set_buffer_offsets(0, 64);
  Write(target, "buffer_overlaps_data", wire(v));
  v = InlineValue(10, {64});
  v.set_buffer_sizes(0, 65);
  Write(target, "buffer_past_end", wire(v));
  v = InlineValue(10, {1, 2});
  v.add_buffer_sizes(3);
  Write(target, "count_mismatch", wire(v));
  v = InlineValue(10, {8});
  v.set_buffer_sizes(0, ~uint64_t{0});
  Write(target, "size_wraps", wire(v));
  v = InlineValue(0, {});
  v.clear_inline_data();
  v.mutable_shm()->set_pid(1);
  v.mutable_shm()->set_fd(3);
  v.mutable_shm()->set_size(1 << 20);
  v.set_data_size(128);
  v.add_buffer_offsets(128);
  v.add_buffer_sizes(4096);
  Write(target, "shm_location", wire(v));
  Write(target, "no_location", wire(proto::ObjectValueProto()));
  // Mode 1 (FuzzedDataProvider over the fields); any bytes are a valid input.
  Write(target, "fields_small", std::string("\x01") + std::string(40, '\x40'));
  Write(target, "fields_max", std::string("\x01") + std::string(64, '\xff'));
}

// --- control_message_fuzz -----------------------------------------------------

constexpr uint8_t kReply = 0x80;
constexpr uint8_t kError = 0x40;

void Msg(const std::string& name, uint8_t selector, const google::protobuf::MessageLite& m) {
  Write("control_message_fuzz", name,
        std::string(1, static_cast<char>(selector)) + m.SerializeAsString());
}

proto::TaskSpec Task(uint64_t seq) {
  proto::TaskSpec spec;
  spec.set_task_id(kOtherId);
  spec.set_actor_id(kActorId);
  spec.set_caller_id("caller-1");
  spec.set_caller_address("unix:@ferry-fuzz-caller");
  spec.set_sequence_number(seq);
  spec.set_method("step");
  spec.set_language("python");
  *spec.add_args()->mutable_value() = InlineValue(50, {128, 3});
  spec.add_return_ids(kOtherId);
  return spec;
}

proto::TaskArg RdtArg(const std::string& producer, bool with_recv) {
  proto::TaskArg arg;
  proto::ObjectValueProto* v = arg.mutable_value();
  v->set_format("pickle5");
  v->set_inline_data("rdt-structure");
  v->set_data_size(13);
  proto::RdtInfo* rdt = v->mutable_rdt();
  rdt->set_transport("gloo");
  rdt->set_producer_actor_id(producer);
  rdt->set_producer_address("unix:@ferry-fuzz-producer");
  proto::TensorMetaProto* meta = rdt->add_tensors();
  meta->set_dtype("float32");
  meta->add_shape(4);
  meta->set_device("cpu");
  meta->set_nbytes(16);
  arg.set_object_id(kObjectId);
  if (with_recv) {
    arg.mutable_tensor_recv()->set_group("g");
    arg.mutable_tensor_recv()->set_src_rank(0);
    arg.mutable_tensor_recv()->set_tag(9);
  }
  return arg;
}

void ControlSeeds() {
  proto::Hello hello;
  hello.set_token("fuzz-token");
  hello.set_worker_id(kOtherId);
  hello.set_address("unix:@ferry-fuzz-peer");
  hello.set_pid(7);
  Msg("hello", proto::HELLO, hello);

  Msg("push_task_inline_arg", proto::PUSH_TASK, Task(0));
  proto::TaskSpec spec = Task(0);
  proto::ObjectRefProto* ref = spec.add_args()->mutable_ref();
  ref->set_object_id(kObjectId);
  ref->set_owner_worker_id(kWorkerId);
  ref->set_owner_address("unix:@ferry-fuzz");
  *spec.add_args() = RdtArg(kActorId, false);  // passed back to its producer
  *spec.add_args() = RdtArg(kOtherId, true);   // needs a group this worker lacks
  spec.add_return_ids(kWorkerId);
  Msg("push_task_ref_and_rdt_args", proto::PUSH_TASK, spec);
  Msg("push_task_waits_for_seq_0", proto::PUSH_TASK, Task(1));
  spec = Task(0);
  spec.set_max_retries(-1);
  spec.set_attempt(7);
  spec.set_retry_exceptions("not a pickle");
  Msg("push_task_retried_with_bad_retry_exceptions", proto::PUSH_TASK, spec);
  spec = Task(0);
  spec.mutable_args(0)->mutable_value()->set_buffer_offsets(0, 1);
  Msg("push_task_bad_layout", proto::PUSH_TASK, spec);
  spec = Task(0);
  spec.mutable_args(0)->mutable_value()->mutable_error()->set_code(100);
  spec.mutable_args(0)->mutable_value()->mutable_error()->set_message("Traceback: boom");
  Msg("push_task_error_arg", proto::PUSH_TASK, spec);

  proto::GetObjectRequest get;
  get.set_object_id(kObjectId);
  get.set_timeout_ms(-1);
  Msg("get_object", proto::GET_OBJECT, get);
  proto::FreeObjects free_objects;
  free_objects.add_object_ids(kObjectId);
  free_objects.add_object_ids("short");
  Msg("free_objects", proto::FREE_OBJECTS, free_objects);
  proto::SendTensors send;
  send.set_object_id(kObjectId);
  send.set_group("g");
  send.set_dst_rank(1);
  send.set_tag(3);
  Msg("send_tensors", proto::SEND_TENSORS, send);
  proto::FetchTensors fetch;
  fetch.set_object_id(kObjectId);
  Msg("fetch_tensors_inline", proto::FETCH_TENSORS, fetch);
  fetch.set_value_id(kOtherId);
  Msg("fetch_tensors_copy", proto::FETCH_TENSORS, fetch);
  proto::LeaveGroup leave;
  leave.set_name("g");
  Msg("leave_group", proto::LEAVE_GROUP, leave);
  leave.mutable_cause()->set_code(14);
  leave.mutable_cause()->set_message("actor died");
  Msg("leave_group_after_failure", proto::LEAVE_GROUP, leave);
  proto::Borrows borrows;
  borrows.set_borrower_id(kWorkerId);
  borrows.add_object_ids(kObjectId);
  borrows.add_epochs(1);
  borrows.add_object_ids("short");
  Msg("add_borrowers", proto::ADD_BORROWERS, borrows);
  Msg("remove_borrowers", proto::REMOVE_BORROWERS, borrows);
  Msg("exit", proto::EXIT, proto::Empty());
  Msg("unknown_method_31", 31, proto::Empty());

  proto::RegisterWorker reg;
  reg.set_worker_id(kWorkerId);
  reg.set_actor_id(kActorId);
  reg.set_address("unix:@ferry-fuzz");
  reg.set_pid(9);
  Msg("register_worker", proto::REGISTER_WORKER, reg);
  proto::ActorReady ready;
  ready.set_actor_id(kActorId);
  ready.mutable_creation_error()->set_code(100);
  ready.mutable_creation_error()->set_message("ctor failed");
  Msg("actor_ready_failed", proto::ACTOR_READY, ready);
  proto::GetActorInfo info_req;
  info_req.set_name("counter");
  info_req.set_wait_until_settled(true);
  Msg("get_actor_info_by_name", proto::GET_ACTOR_INFO, info_req);
  info_req.Clear();
  info_req.set_actor_id(kActorId);
  info_req.set_wait_for_change(true);
  info_req.set_known_restarts(-3);
  Msg("get_actor_info_wait_for_change", proto::GET_ACTOR_INFO, info_req);
  proto::KillActor kill;
  kill.set_actor_id(kActorId);
  Msg("kill_actor", proto::KILL_ACTOR, kill);
  kill.set_no_restart(false);
  Msg("kill_actor_restart", proto::KILL_ACTOR, kill);
  proto::KvPut put;
  put.set_key("group/g/rank0");
  put.set_value("addr");
  Msg("kv_put", proto::KV_PUT, put);
  proto::KvGet kv_get;
  kv_get.set_key("group/g/rank1");
  kv_get.set_wait_ms(10);
  Msg("kv_get_wait", proto::KV_GET, kv_get);
  proto::KvDel del;
  del.set_key("group/");
  del.set_prefix(true);
  Msg("kv_del_prefix", proto::KV_DEL, del);

  proto::CreateActor create;
  create.set_actor_id(kActorId);
  create.mutable_options()->set_name("counter");
  create.mutable_options()->set_max_concurrency(2);
  create.mutable_options()->set_class_name("Counter");
  *create.mutable_creation_task() = Task(0);
  create.mutable_creation_task()->set_is_creation(true);
  create.add_worker_command("/bin/false");  // never run by the target
  Msg("create_actor", proto::CREATE_ACTOR, create);
  proto::JoinGroup join;
  join.set_name("g");
  join.set_backend("gloo");
  join.set_rank(0);
  join.set_size(2);
  join.set_kv_prefix("group/g/");
  join.set_timeout_ms(1000);
  Msg("join_group", proto::JOIN_GROUP, join);
  proto::ActorInfo info;
  info.set_actor_id(kActorId);
  info.set_state(proto::ActorInfo::DEAD);
  info.mutable_death_cause()->set_code(14);
  info.mutable_death_cause()->set_message("killed");
  Msg("actor_died", proto::ACTOR_DIED, info);
  info.set_state(proto::ActorInfo::RESTARTING);
  info.set_num_restarts(1 << 30);
  info.set_max_restarts(-1);
  Msg("actor_restarting", proto::ACTOR_DIED, info);
  info.set_state(proto::ActorInfo::DEAD);
  info.clear_num_restarts();
  info.clear_max_restarts();

  // Cluster mode: nodes, heartbeats, workers started on other hosts.
  proto::RegisterNode node;
  node.set_node_id(kOtherId);
  node.set_node_ip("10.213.0.12");
  (*node.mutable_total()->mutable_amounts())["CPU"] = 4;
  (*node.mutable_total()->mutable_amounts())["special"] = 1;
  Msg("register_node", proto::REGISTER_NODE, node);
  proto::NodeHeartbeat beat;
  beat.set_node_id(kOtherId);
  Msg("node_heartbeat", proto::NODE_HEARTBEAT, beat);
  proto::WorkerExited exited;
  exited.set_actor_id(kActorId);
  exited.set_description("was killed by signal 9 (Killed)");
  Msg("worker_exited", proto::WORKER_EXITED, exited);
  Msg("get_nodes", proto::GET_NODES, proto::Empty());
  proto::RegisterDriver driver;
  driver.set_node_ip("10.213.0.11");
  Msg("register_driver", proto::REGISTER_DRIVER, driver);
  proto::StartWorker start;
  start.set_actor_id(kActorId);
  start.set_worker_id(kWorkerId);
  start.add_worker_command("/bin/false");  // never run by the target
  (*start.mutable_env())["FERRY_NODE_ID"] = "00";
  Msg("start_worker", proto::START_WORKER, start);
  proto::CreateActor placed = create;
  (*placed.mutable_options()->mutable_resources())["special"] = 1;
  placed.mutable_options()->mutable_scheduling()->set_kind(proto::SchedulingStrategy::SPREAD);
  Msg("create_actor_with_resources", proto::CREATE_ACTOR, placed);

  // Remote functions: a pooled worker leased, given back, blocked in get.
  proto::LeaseWorker lease;
  *lease.mutable_options() = placed.options();
  lease.add_worker_command("/bin/false");  // never run by the target
  lease.set_language("python");
  Msg("lease_worker", proto::LEASE_WORKER, lease);
  proto::ReturnWorker give_back;
  give_back.set_lease_id(kOtherId);
  Msg("return_worker", proto::RETURN_WORKER, give_back);
  give_back.set_worker_failed(true);
  Msg("return_worker_failed", proto::RETURN_WORKER, give_back);
  proto::LeaseBlocked blocked;
  blocked.set_lease_id(kOtherId);
  blocked.set_blocked(true);
  Msg("lease_blocked", proto::LEASE_BLOCKED, blocked);

  // A worker's output, relayed by its node agent.
  proto::WorkerOutput output;
  output.set_actor_id(kActorId);
  output.set_pid(4242);
  output.set_name("Trainer");
  output.set_node_ip("10.213.0.12");
  output.set_is_stderr(true);
  output.add_lines("epoch 3 loss 0.125");
  output.add_lines("");
  Msg("worker_output", proto::WORKER_OUTPUT, output);
  Msg("list_actors", proto::LIST_ACTORS, proto::Empty());
  Msg("list_processes", proto::LIST_PROCESSES, proto::Empty());
  proto::StateRequest state;
  state.set_max_objects(3);
  state.set_max_transfers(1);
  Msg("get_state", proto::GET_STATE, state);

  // Replies, as the caller handles them.
  proto::HelloReply hello_reply;
  hello_reply.set_worker_id(kOtherId);
  hello_reply.set_pid(8);
  Msg("reply_hello", kReply | proto::HELLO, hello_reply);
  proto::PushTaskReply push_reply;
  *push_reply.add_returns() = InlineValue(20, {64});
  *push_reply.add_returns() = InlineValue(0, {});
  push_reply.mutable_returns(1)->mutable_error()->set_code(100);
  Msg("reply_push_task", kReply | proto::PUSH_TASK, push_reply);
  proto::LeaseWorkerReply lease_reply;
  lease_reply.set_lease_id(kOtherId);
  lease_reply.set_actor_id(kActorId);
  Msg("reply_lease_worker", kReply | proto::LEASE_WORKER, lease_reply);
  Msg("reply_get_object", kReply | proto::GET_OBJECT, InlineValue(30, {256, 1}));
  Msg("reply_fetch_tensors", kReply | proto::FETCH_TENSORS, InlineValue(0, {16, 0}, "tensors"));
  proto::NodeList nodes;
  proto::NodeInfo* n = nodes.add_nodes();
  n->set_node_id(kOtherId);
  n->set_alive(true);
  (*n->mutable_total()->mutable_amounts())["CPU"] = 2;
  Msg("reply_get_nodes", kReply | proto::GET_NODES, nodes);
  proto::RegisterWorkerReply reg_reply;
  *reg_reply.mutable_actor() = create;
  reg_reply.set_node_id(kOtherId);
  Msg("reply_register_worker", kReply | proto::REGISTER_WORKER, reg_reply);
  Msg("reply_get_actor_info", kReply | proto::GET_ACTOR_INFO, info);
  proto::KvGetReply kv_reply;
  kv_reply.set_found(true);
  kv_reply.set_value("addr");
  Msg("reply_kv_get", kReply | proto::KV_GET, kv_reply);
  proto::StatusProto status;
  status.set_code(14);
  status.set_message("the actor died");
  Msg("reply_error_unavailable", kReply | kError | proto::PUSH_TASK, status);
  status.set_code(42);
  Msg("reply_error_unknown_code", kReply | kError | proto::GET_OBJECT, status);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_ROOT   (writes CORPUS_ROOT/<target>/<seed>)\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  FrameSeeds();
  LayoutSeeds();
  ControlSeeds();
  std::printf("gen_corpus: wrote %d seeds under %s\n", g_written, g_root.c_str());
  return 0;
}
