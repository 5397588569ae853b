#include "core/status_report.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

using std::chrono::minutes;

ClusterConfig three_nodes() {
  ClusterConfig config;
  for (const char* name : {"node1", "node2", "node3"}) {
    config.nodes.push_back({.name = name, .data_dir = std::string("/d/") + name});
  }
  config.status.slot_retained_warning = 100 << 20;
  config.status.standby_gone_warning = minutes(10);
  return config;
}

TEST(TrackInactiveSlots, RemembersFirstSightingAndForgetsActive) {
  WallTime t0{minutes(1000)};
  std::map<std::string, WallTime> previous = {{"node2", t0}, {"node3", t0}};
  std::vector<SlotRow> slots = {{.name = "node2", .active = false},
                                {.name = "node3", .active = true},
                                {.name = "node4", .active = false}};
  auto tracked = track_inactive_slots(previous, slots, t0 + minutes(5));
  EXPECT_EQ(tracked.size(), 2u);
  EXPECT_EQ(tracked.at("node2"), t0);
  EXPECT_EQ(tracked.at("node4"), t0 + minutes(5));
  EXPECT_FALSE(tracked.contains("node3"));
}

bool has_warning(const std::vector<std::string>& warnings, std::string_view text) {
  for (const std::string& warning : warnings) {
    if (warning.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(Assess, WarnsOfWhatMatters) {
  ClusterConfig config = three_nodes();
  WallTime now{minutes(1000)};
  ReplicationRow streaming{.application_name = "node2", .state = "streaming"};
  struct Case {
    const char* name;
    ClusterReport report;
    const char* expected;  // nullptr: no warning at all
  };
  auto primary_with = [&](std::vector<SlotRow> slots) {
    ClusterReport report;
    report.primary = "node1";
    report.nodes = {{.name = "node1", .role = NodeRole::kPrimary},
                    {.name = "node2", .role = NodeRole::kStandby, .replication = streaming},
                    {.name = "node3", .role = NodeRole::kStopped}};
    report.slots = std::move(slots);
    return report;
  };
  std::vector<Case> cases = {
      {"healthy",
       primary_with(
           {{.name = "node2", .active = true, .wal_status = "reserved", .retained_bytes = 1000}}),
       nullptr},
      {"too much WAL retained",
       primary_with({{.name = "node3",
                      .wal_status = "extended",
                      .retained_bytes = 200 << 20,
                      .inactive_since = now}}),
       "retains 200.0 MiB"},
      {"standby gone too long",
       primary_with({{.name = "node3",
                      .wal_status = "reserved",
                      .retained_bytes = 10,
                      .inactive_since = now - minutes(11)}}),
       "no standby for 11min"},
      {"invalidated", primary_with({{.name = "node3", .wal_status = "lost"}}),
       "slot node3 was invalidated"},
      {"about to be invalidated", primary_with({{.name = "node3", .wal_status = "unreserved"}}),
       "will be invalidated"},
      {"stranger slot",
       primary_with({{.name = "backup", .active = true, .wal_status = "reserved"}}),
       "belongs to no node"},
  };
  ClusterReport no_primary;
  no_primary.nodes = {{.name = "node1", .role = NodeRole::kStopped}};
  cases.push_back({"no primary", no_primary, "no primary is running"});
  ClusterReport two_primaries;
  two_primaries.primary = "node1";
  two_primaries.nodes = {{.name = "node1", .role = NodeRole::kPrimary},
                         {.name = "node2", .role = NodeRole::kPrimary}};
  cases.push_back({"split brain", two_primaries, "split brain"});
  ClusterReport lagging = primary_with({});
  lagging.nodes[1].replication->state = "catchup";
  cases.push_back({"standby not streaming", lagging, "standby node2 is not streaming"});

  ClusterReport paused = primary_with({});
  paused.agents = AgentsReport{.leader = "node1", .paused = true, .candidates = {"node2"}};
  cases.push_back({"paused", paused, "paused: the agents take no automatic action"});
  ClusterReport nobody_eligible = primary_with({});
  nobody_eligible.agents =
      AgentsReport{.leader = "node1", .not_eligible = {"node2 is tagged nofailover"}};
  cases.push_back({"no standby eligible", nobody_eligible,
                   "no standby may take over if node1 fails; node2 is tagged nofailover"});
  ClusterReport wrong_holder = primary_with({});
  wrong_holder.agents = AgentsReport{.leader = "node2", .candidates = {"node3"}};
  cases.push_back({"writable node without the lease", wrong_holder,
                   "node1 accepts writes but node2 holds the lease"});
  ClusterReport healthy_agents = primary_with({});
  healthy_agents.agents = AgentsReport{.leader = "node1", .candidates = {"node2"}};
  cases.push_back({"healthy agents", healthy_agents, nullptr});
  ClusterReport one_of_two = primary_with({});
  one_of_two.agents = AgentsReport{.leader = "node1",
                                   .synchronous_mode = true,
                                   .synchronous_node_count = 2,
                                   .sync_standbys = std::vector<std::string>{"node2"},
                                   .candidates = {"node2"}};
  cases.push_back({"one of two synchronous standbys named", one_of_two,
                   "1 of 2 synchronous standbys named (node2): a commit is on fewer standbys"});
  ClusterReport two_of_two = one_of_two;
  two_of_two.agents->sync_standbys = std::vector<std::string>{"node2", "node3"};
  cases.push_back({"two of two synchronous standbys named", two_of_two, nullptr});

  for (const Case& c : cases) {
    auto warnings = assess(c.report, config, now);
    if (c.expected == nullptr) {
      EXPECT_TRUE(warnings.empty()) << c.name << ": " << warnings.front();
    } else {
      EXPECT_TRUE(has_warning(warnings, c.expected)) << c.name;
    }
  }
}

}  // namespace
}  // namespace tandem
