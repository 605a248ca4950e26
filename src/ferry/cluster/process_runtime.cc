#include "ferry/cluster/process_runtime.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "ferry/cluster/node_service.h"
#include "ferry/cluster/output_printer.h"
#include "ferry/cluster/process_spawner.h"
#include "ferry/cluster/session_file.h"
#include "ferry/common/config.h"
#include "ferry/common/logging.h"
#include "ferry/rpc/address.h"
#include "ferry/transport/registry.h"

namespace ferry::cluster {
namespace {

StatusOr<DriverRuntime> StartEmbedded(const DriverOptions& options) {
  core::CoreWorkerOptions core_options;
  core_options.is_driver = true;
  core_options.token = NewClusterToken();
  core_options.session = NewSessionName();
  LocalNode node;
  node.resources = options.resources;
  if (!node.resources.count(kCpu)) {
    node.resources[kCpu] = std::max(1u, std::thread::hardware_concurrency());
  }
  // Every process of this node carries its id (host_id.h).
  ::setenv("FERRY_NODE_ID", node.id.Hex().c_str(), 1);
  DriverRuntime rt;
  rt.node_id = node.id;
  rt.core = std::make_shared<core::CoreWorker>(core_options);
  HeadOptions head_options{.token = core_options.token,
                           .session = core_options.session,
                           .local_node = node,
                           .log_dir = SessionDir(Config::Get().temp_dir, core_options.session) +
                                      "/logs",
                           .print_output = nullptr,
                           .driver_worker_id = core_options.worker_id.Binary()};
  if (Config::Get().log_to_driver) {
    auto printer = std::make_shared<OutputPrinter>("");
    head_options.print_output = [printer](const proto::WorkerOutput& output) {
      printer->Print(output);
    };
  }
  rt.head = std::make_unique<Head>(rt.core->io_loop(), rt.core->dispatcher(),
                                   std::move(head_options));
  Status s = rt.core->Start();
  if (!s.ok()) {
    rt.Shutdown();
    return s.WithContext("starting ferry");
  }
  rt.head->SetAddress(rt.core->address());
  // So that `ferry status` / `ferry list` find this session.
  Status written = WriteSessionFile(Config::Get().temp_dir, {.session = core_options.session,
                                                             .address = rt.core->address(),
                                                             .token = core_options.token,
                                                             .pid = static_cast<int>(getpid())});
  if (written.ok()) {
    rt.session_file = {Config::Get().temp_dir, core_options.session};
  } else {
    FERRY_LOG(WARNING) << "`ferry status` will not find this session: " << written.message();
  }
  return rt;
}

StatusOr<DriverRuntime> ConnectToCluster(const DriverOptions& options) {
  FERRY_ASSIGN_OR_RETURN(std::string head, HeadTcpAddress(options.address));
  if (options.token.empty()) {
    return Status::InvalidArgument("connecting to the ferry cluster at " + head.substr(4) +
                                   " needs its token: set FERRY_TOKEN");
  }
  std::string node_ip = options.node_ip;
  if (node_ip.empty()) {
    FERRY_ASSIGN_OR_RETURN(node_ip, LocalAddressToward(head));
  }
  DriverRuntime rt;
  core::CoreWorkerOptions core_options;
  core_options.is_driver = true;
  core_options.token = options.token;
  core_options.head_address = head;
  core_options.node_ip = node_ip;
  rt.link_loop = std::make_unique<rpc::IoLoop>("ferry-head-link");
  rt.link_loop->Start();
  proto::Hello hello;
  hello.set_token(options.token);
  hello.set_worker_id(core_options.worker_id.Binary());
  hello.set_pid(getpid());
  // The Head sends this driver its workers' output over the link.
  auto link_dispatcher = std::make_shared<rpc::Dispatcher>();
  auto printer = std::make_shared<OutputPrinter>(node_ip);
  link_dispatcher->Register(proto::WORKER_OUTPUT, [printer](const std::shared_ptr<rpc::Channel>&,
                                                            std::string_view payload,
                                                            rpc::Responder) {
    proto::WorkerOutput output;
    if (output.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      printer->Print(output);
    }
  });
  link_dispatcher->Freeze();
  auto link = ConnectToHead(*rt.link_loop, head, hello, link_dispatcher);
  if (!link.ok()) {
    rt.Shutdown();
    return link.status();
  }
  rt.link = *link;
  proto::RegisterDriver reg;
  reg.set_node_ip(node_ip);
  reg.set_log_to_driver(Config::Get().log_to_driver);
  auto payload = rt.link->CallSync(proto::REGISTER_DRIVER, reg,
                                   Deadline::After(std::chrono::seconds(5)));
  proto::RegisterDriverReply reply;
  if (!payload.ok() || !reply.ParseFromString(*payload)) {
    rt.Shutdown();
    return payload.ok() ? Status::Internal("malformed RegisterDriverReply")
                        : payload.status().WithContext("registering with the ferry head");
  }
  core_options.session = reply.session();
  // A driver on a host with a node agent is part of that node (same-host
  // paths to its workers); elsewhere it is a host of its own.
  auto node = NodeId::FromBinary(reply.node_id());
  rt.node_id = node.ok() ? *node : NodeId::Random();
  ::setenv("FERRY_NODE_ID", rt.node_id.Hex().c_str(), 1);
  ::setenv("FERRY_NODE_IP", node_ip.c_str(), 1);
  rt.core = std::make_shared<core::CoreWorker>(core_options);
  Status s = rt.core->Start();
  if (!s.ok()) {
    rt.Shutdown();
    return s.WithContext("starting ferry");
  }
  // Now that it listens: where `ferry list objects` and `ferry memory` ask it.
  reg.set_address(rt.core->address());
  auto again = rt.link->CallSync(proto::REGISTER_DRIVER, reg,
                                 Deadline::After(std::chrono::seconds(5)));
  if (!again.ok()) {
    rt.Shutdown();
    return again.status().WithContext("registering with the ferry head");
  }
  return rt;
}

}  // namespace

void DriverRuntime::Shutdown() {
  if (!session_file.first.empty()) {
    RemoveSessionFile(session_file.first, session_file.second);
    session_file = {};
  }
  if (head) head->Shutdown();
  if (link) link->Close();
  if (core) core->Shutdown();
  head.reset();  // before core: the Head's watches live on core's io loop
  core.reset();
  if (link_loop) {
    link_loop->Stop();
    link_loop->Join();
  }
  link.reset();
  link_loop.reset();
}

StatusOr<std::vector<proto::NodeInfo>> DriverRuntime::Nodes() {
  if (head) return head->Nodes();
  if (!link) return Status::FailedPrecondition("ferry is not running");
  FERRY_ASSIGN_OR_RETURN(std::string payload,
                         link->CallSync(proto::GET_NODES, proto::Empty(),
                                        Deadline::After(std::chrono::seconds(10))));
  proto::NodeList list;
  if (!list.ParseFromString(payload)) return Status::Internal("malformed NodeList");
  return std::vector<proto::NodeInfo>(list.nodes().begin(), list.nodes().end());
}

StatusOr<DriverRuntime> StartDriverRuntime(const DriverOptions& options) {
  transport::SetProcessEnvironmentDefaults();
  return options.address.empty() ? StartEmbedded(options) : ConnectToCluster(options);
}

bool IsSpawnedWorker() { return !EnvString("FERRY_HEAD_ADDRESS", "").empty(); }

StatusOr<std::shared_ptr<core::CoreWorker>> StartWorkerRuntime() {
  if (!IsSpawnedWorker()) {
    return Status::FailedPrecondition("not started by ferry: FERRY_HEAD_ADDRESS is not set");
  }
  InstallWorkerGuards();
  // stdout is a pipe to the node agent (WorkerOutput): line-buffer it, so a
  // C or C++ worker's lines reach the driver as they are printed.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  transport::SetProcessEnvironmentDefaults();
  core::CoreWorkerOptions options;
  options.is_driver = false;
  options.token = EnvString("FERRY_TOKEN", "");
  options.session = EnvString("FERRY_SESSION", "");
  options.head_address = EnvString("FERRY_HEAD_ADDRESS", "");
  options.node_ip = EnvString("FERRY_NODE_IP", "");
  FERRY_ASSIGN_OR_RETURN(options.worker_id, WorkerId::FromHex(EnvString("FERRY_WORKER_ID", "")));
  FERRY_ASSIGN_OR_RETURN(options.actor_id, ActorId::FromHex(EnvString("FERRY_ACTOR_ID", "")));
  auto core = std::make_shared<core::CoreWorker>(options);
  FERRY_RETURN_IF_ERROR(core->Start());
  return core;
}

}  // namespace ferry::cluster
