#include "ferry/cluster/placement.h"

#include <sstream>

namespace ferry::cluster {
namespace {

// Amounts are sums of user-given doubles (0.5 CPU): compare with a tolerance
// so 0.1 + 0.2 fits in 0.3.
constexpr double kEpsilon = 1e-9;

std::string Number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

bool FitsNow(const NodeView& node, const ResourceMap& demand) {
  return node.alive && Fits(node.available, demand);
}

}  // namespace

bool Fits(const ResourceMap& have, const ResourceMap& demand) {
  for (const auto& [name, amount] : demand) {
    if (amount <= 0) continue;
    auto it = have.find(name);
    if (it == have.end() || it->second + kEpsilon < amount) return false;
  }
  return true;
}

void Subtract(ResourceMap& have, const ResourceMap& amounts) {
  for (const auto& [name, amount] : amounts) {
    double& v = have[name];
    v -= amount;
    if (v < kEpsilon) v = 0;
  }
}

void Add(ResourceMap& have, const ResourceMap& amounts) {
  for (const auto& [name, amount] : amounts) have[name] += amount;
}

std::string Describe(const ResourceMap& amounts) {
  std::string out = "{";
  for (const auto& [name, amount] : amounts) {
    if (amount <= 0) continue;
    if (out.size() > 1) out += ", ";
    out += name + ": " + Number(amount);
  }
  return out + "}";
}

ResourceMap FromProto(const proto::ResourceSet& set) {
  return ResourceMap(set.amounts().begin(), set.amounts().end());
}

proto::ResourceSet ToProto(const ResourceMap& amounts) {
  proto::ResourceSet set;
  for (const auto& [name, amount] : amounts) (*set.mutable_amounts())[name] = amount;
  return set;
}

PlacementRequest RequestFor(const proto::ActorOptions& options) {
  PlacementRequest r;
  for (const auto& [name, amount] : options.resources()) {
    if (amount > 0) r.to_hold[name] = amount;
  }
  if (options.has_num_cpus() && options.num_cpus() > 0) r.to_hold[kCpu] = options.num_cpus();
  if (options.num_gpus() > 0) r.to_hold[kGpu] = options.num_gpus();
  r.to_place = r.to_hold;
  if (!options.has_num_cpus()) r.to_place[kCpu] = 1;
  r.strategy = options.scheduling();
  return r;
}

Placement Place(const std::vector<NodeView>& nodes, const PlacementRequest& request) {
  Placement p;
  const std::string need = Describe(request.to_place);
  bool feasible = false;
  for (const NodeView& n : nodes) feasible |= n.alive && Fits(n.total, request.to_place);
  if (request.strategy.kind() == proto::SchedulingStrategy::NODE_AFFINITY) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i].id.Binary() != request.strategy.node_id()) continue;
      if (FitsNow(nodes[i], request.to_place)) {
        p.decision = Placement::kPlaced;
        p.node_index = i;
        return p;
      }
      if (request.strategy.soft()) break;
      if (!nodes[i].alive) {
        p.reason = "the node " + nodes[i].id.Hex() + " named by NodeAffinitySchedulingStrategy " +
                   "is dead (pass soft=True to run elsewhere)";
        return p;
      }
      if (!Fits(nodes[i].total, request.to_place)) {
        p.reason = "the node " + nodes[i].id.Hex() + " named by NodeAffinitySchedulingStrategy " +
                   "has " + Describe(nodes[i].total) + " in all, less than the " + need +
                   " requested";
        return p;
      }
      p.decision = Placement::kWait;
      p.reason = "waiting for " + need + " to be free on node " + nodes[i].id.Hex();
      return p;
    }
    if (!request.strategy.soft()) {
      bool known = false;
      for (const NodeView& n : nodes) known |= n.id.Binary() == request.strategy.node_id();
      if (!known) {
        auto hex = NodeId::FromBinary(request.strategy.node_id());
        p.reason = "NodeAffinitySchedulingStrategy names node " +
                   (hex.ok() ? hex->Hex() : std::string("(malformed id)")) +
                   ", which is not in the cluster (pass soft=True to run elsewhere)";
        return p;
      }
    }
  }
  if (!feasible) {
    std::string have;
    for (const NodeView& n : nodes) {
      if (!n.alive) continue;
      have += (have.empty() ? "" : ", ") + Describe(n.total);
    }
    p.reason = "it requires " + need + " and no node in the cluster has that much (" +
               (have.empty() ? std::string("no node is alive") : "nodes have " + have) + ")";
    return p;
  }
  const bool spread = request.strategy.kind() == proto::SchedulingStrategy::SPREAD;
  bool found = false;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!FitsNow(nodes[i], request.to_place)) continue;
    if (!found || (spread && nodes[i].Load() < nodes[p.node_index].Load())) {
      p.node_index = i;
      found = true;
      if (!spread) break;
    }
  }
  if (found) {
    p.decision = Placement::kPlaced;
    return p;
  }
  p.decision = Placement::kWait;
  p.reason = "waiting for " + need + " to be free: other actors hold it";
  return p;
}

}  // namespace ferry::cluster
