#include "ferry/cluster/placement.h"

#include <gtest/gtest.h>

namespace ferry::cluster {
namespace {

NodeView Node(ResourceMap total, int actors = 0) {
  NodeView n;
  n.id = NodeId::Random();
  n.alive = true;
  n.total = total;
  n.available = total;
  n.num_actors = actors;
  return n;
}

proto::ActorOptions Options(double cpus = -1, double gpus = 0, ResourceMap custom = {}) {
  proto::ActorOptions o;
  if (cpus >= 0) {
    o.set_has_num_cpus(true);
    o.set_num_cpus(cpus);
  }
  o.set_num_gpus(gpus);
  for (auto& [k, v] : custom) (*o.mutable_resources())[k] = v;
  return o;
}

TEST(PlacementTest, DefaultActorNeedsOneCpuToPlaceAndHoldsNone) {
  PlacementRequest r = RequestFor(Options());
  EXPECT_EQ(r.to_place, (ResourceMap{{"CPU", 1}}));
  EXPECT_TRUE(r.to_hold.empty());
  PlacementRequest explicit_zero = RequestFor(Options(0));
  EXPECT_TRUE(explicit_zero.to_place.empty());
  PlacementRequest two = RequestFor(Options(2, 1, {{"special", 1}}));
  EXPECT_EQ(two.to_hold, (ResourceMap{{"CPU", 2}, {"GPU", 1}, {"special", 1}}));
  EXPECT_EQ(two.to_place, two.to_hold);
}

TEST(PlacementTest, PacksOntoTheFirstNodeWithRoom) {
  std::vector<NodeView> nodes = {Node({{"CPU", 2}}), Node({{"CPU", 2}})};
  Placement p = Place(nodes, RequestFor(Options(2)));
  ASSERT_EQ(p.decision, Placement::kPlaced);
  EXPECT_EQ(p.node_index, 0u);
  Subtract(nodes[0].available, RequestFor(Options(2)).to_hold);
  p = Place(nodes, RequestFor(Options(2)));
  ASSERT_EQ(p.decision, Placement::kPlaced);
  EXPECT_EQ(p.node_index, 1u);
  Subtract(nodes[1].available, RequestFor(Options(2)).to_hold);
  p = Place(nodes, RequestFor(Options(1)));
  EXPECT_EQ(p.decision, Placement::kWait) << p.reason;
}

TEST(PlacementTest, CustomResourcePicksTheNodeThatHasIt) {
  std::vector<NodeView> nodes = {Node({{"CPU", 4}}), Node({{"CPU", 4}, {"special", 1}})};
  Placement p = Place(nodes, RequestFor(Options(-1, 0, {{"special", 1}})));
  ASSERT_EQ(p.decision, Placement::kPlaced);
  EXPECT_EQ(p.node_index, 1u);
}

TEST(PlacementTest, InfeasibleRequestSaysWhatIsMissing) {
  std::vector<NodeView> nodes = {Node({{"CPU", 2}})};
  Placement p = Place(nodes, RequestFor(Options(-1, 1)));
  EXPECT_EQ(p.decision, Placement::kInfeasible);
  EXPECT_NE(p.reason.find("GPU: 1"), std::string::npos) << p.reason;
  EXPECT_NE(p.reason.find("{CPU: 2}"), std::string::npos) << p.reason;
  nodes[0].alive = false;
  p = Place(nodes, RequestFor(Options()));
  EXPECT_EQ(p.decision, Placement::kInfeasible);
}

TEST(PlacementTest, FractionsAddUpWithoutRoundingTrouble) {
  std::vector<NodeView> nodes = {Node({{"CPU", 0.3}})};
  Subtract(nodes[0].available, {{"CPU", 0.1}});
  Subtract(nodes[0].available, {{"CPU", 0.1}});
  EXPECT_EQ(Place(nodes, RequestFor(Options(0.1))).decision, Placement::kPlaced);
}

TEST(PlacementTest, SpreadTakesTheLeastLoadedNode) {
  std::vector<NodeView> nodes = {Node({{"CPU", 8}}, 2), Node({{"CPU", 8}}, 0),
                                 Node({{"CPU", 8}}, 1)};
  PlacementRequest r = RequestFor(Options());
  r.strategy.set_kind(proto::SchedulingStrategy::SPREAD);
  Placement p = Place(nodes, r);
  ASSERT_EQ(p.decision, Placement::kPlaced);
  EXPECT_EQ(p.node_index, 1u);
}

TEST(PlacementTest, NodeAffinityHardAndSoft) {
  std::vector<NodeView> nodes = {Node({{"CPU", 8}}), Node({{"CPU", 8}})};
  PlacementRequest r = RequestFor(Options());
  r.strategy.set_kind(proto::SchedulingStrategy::NODE_AFFINITY);
  r.strategy.set_node_id(nodes[1].id.Binary());
  Placement p = Place(nodes, r);
  ASSERT_EQ(p.decision, Placement::kPlaced);
  EXPECT_EQ(p.node_index, 1u);

  nodes[1].alive = false;
  p = Place(nodes, r);
  EXPECT_EQ(p.decision, Placement::kInfeasible);
  EXPECT_NE(p.reason.find("dead"), std::string::npos) << p.reason;
  r.strategy.set_soft(true);
  p = Place(nodes, r);
  ASSERT_EQ(p.decision, Placement::kPlaced);
  EXPECT_EQ(p.node_index, 0u);

  r.strategy.set_soft(false);
  r.strategy.set_node_id(NodeId::Random().Binary());
  p = Place(nodes, r);
  EXPECT_EQ(p.decision, Placement::kInfeasible);
  EXPECT_NE(p.reason.find("not in the cluster"), std::string::npos) << p.reason;
}

TEST(PlacementTest, NodeAffinityToAFullNodeWaits) {
  std::vector<NodeView> nodes = {Node({{"CPU", 1}}), Node({{"CPU", 8}})};
  nodes[0].available[kCpu] = 0;
  PlacementRequest r = RequestFor(Options(1));
  r.strategy.set_kind(proto::SchedulingStrategy::NODE_AFFINITY);
  r.strategy.set_node_id(nodes[0].id.Binary());
  EXPECT_EQ(Place(nodes, r).decision, Placement::kWait);
}

}  // namespace
}  // namespace ferry::cluster
