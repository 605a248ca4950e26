// Placement: which node an actor goes to, decided from the nodes' resources.
//
// Resources are named amounts ("CPU", "GPU", custom names such as
// "special"). A request names what must be free to place the actor
// (`to_place`) and what it then holds until it exits (`to_hold`); they differ
// for Ray's default actor, which needs 1 CPU free to be placed and holds 0
// CPUs while it runs, so idle actors do not use up a node.
//
// Place() is a pure function of the node table; the Head applies its answer.
// kInfeasible: no node, even empty, could ever hold the request (the caller
// fails at once); kWait: some node could, once others give resources back.
//
// Thread contract: plain values and pure functions; thread-safe.
//
//   PlacementRequest req = RequestFor(options);            // from ActorOptions
//   Placement p = Place(nodes, req);
//   if (p.decision == Placement::kPlaced) Acquire(nodes[p.node_index], req);
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ferry/common/id.h"
#include "ferry/proto/ferry.pb.h"

namespace ferry::cluster {

using ResourceMap = std::map<std::string, double>;

inline constexpr const char* kCpu = "CPU";
inline constexpr const char* kGpu = "GPU";

// True when every amount in `demand` is available in `have`.
bool Fits(const ResourceMap& have, const ResourceMap& demand);
// have -= amounts (entries reaching ~0 stay, at 0).
void Subtract(ResourceMap& have, const ResourceMap& amounts);
void Add(ResourceMap& have, const ResourceMap& amounts);
// "{CPU: 1, GPU: 2, special: 1}" — for error messages.
std::string Describe(const ResourceMap& amounts);

ResourceMap FromProto(const proto::ResourceSet& set);
proto::ResourceSet ToProto(const ResourceMap& amounts);

struct PlacementRequest {
  ResourceMap to_place;
  ResourceMap to_hold;
  proto::SchedulingStrategy strategy;
};

// Ray's defaults: num_cpus unset -> place with 1 CPU free, hold 0.
PlacementRequest RequestFor(const proto::ActorOptions& options);

struct NodeView {
  NodeId id;
  bool alive = false;
  ResourceMap total;
  ResourceMap available;
  int num_actors = 0;
  int num_leases = 0;  // remote-function tasks running there
  // What SPREAD balances: actors and tasks alike.
  int Load() const { return num_actors + num_leases; }
};

struct Placement {
  enum Decision { kPlaced, kWait, kInfeasible };
  Decision decision = kInfeasible;
  size_t node_index = 0;  // into the nodes passed to Place, when kPlaced
  std::string reason;     // kWait / kInfeasible: what is missing, for the user
};

// DEFAULT packs onto the first alive node (in the order given) with room;
// SPREAD takes the node with room running the fewest actors; NODE_AFFINITY
// takes the named node, and another one only when soft (the named node dead
// or unknown is infeasible unless soft; merely full is kWait).
Placement Place(const std::vector<NodeView>& nodes, const PlacementRequest& request);

}  // namespace ferry::cluster
