// The order of `tandem restart --all`: standbys one at a time, then a switchover to the agents'
// first candidate and the old primary last; refused on a cluster already a node short.
#include "core/rolling_restart.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

using Kind = RollingStep::Kind;

TEST(RollingRestart, StandbysFirstThenTheOldPrimaryAfterASwitchover) {
  struct Case {
    const char* name;
    std::vector<RollingMember> members;
    std::vector<std::string> candidates;
    std::vector<RollingStep> steps;  // empty: refused
    const char* refusal = "";
  };
  RollingMember p1{"node1", true, false};
  RollingMember s2{"node2", false, true};
  RollingMember s3{"node3", false, true};
  std::vector<Case> cases = {
      {"three nodes",
       {p1, s2, s3},
       {"node3", "node2"},
       {{Kind::kRestart, "node2"},
        {Kind::kRestart, "node3"},
        {Kind::kSwitchover, "node3"},
        {Kind::kRestart, "node1"}}},
      {"the primary not first in the list",
       {s2, p1},
       {"node2"},
       {{Kind::kRestart, "node2"}, {Kind::kSwitchover, "node2"}, {Kind::kRestart, "node1"}}},
      {"nobody may take over: the primary restarts in place",
       {p1, s2},
       {},
       {{Kind::kRestart, "node2"}, {Kind::kRestart, "node1"}}},
      {"a candidate that is no member is skipped",
       {p1, s2},
       {"node9", "node2"},
       {{Kind::kRestart, "node2"}, {Kind::kSwitchover, "node2"}, {Kind::kRestart, "node1"}}},
      {"one node", {p1}, {}, {{Kind::kRestart, "node1"}}},
      {"a standby not streaming",
       {p1, s2, {"node3", false, false}},
       {"node2"},
       {},
       "node3 does not stream from the primary"},
      {"no primary", {s2, s3}, {"node2"}, {}, "0 nodes accept writes"},
      {"two primaries", {p1, {"node2", true, false}}, {}, {}, "2 nodes accept writes"},
  };
  for (const Case& each : cases) {
    auto steps = plan_rolling_restart(each.members, each.candidates);
    if (each.steps.empty()) {
      ASSERT_FALSE(steps) << each.name;
      EXPECT_NE(steps.error().message.find(each.refusal), std::string::npos)
          << each.name << ": " << steps.error().message;
      continue;
    }
    ASSERT_TRUE(steps) << each.name << ": " << steps.error().message;
    EXPECT_EQ(*steps, each.steps) << each.name;
  }
}

// tandem restart --all --pending: only the servers that wait for a restart, in the same order;
// the cluster must still be whole before anything restarts.
TEST(RollingRestart, PendingOnlyRestartsTheNodesThatWaitForIt) {
  using Kind = RollingStep::Kind;
  RollingMember p1{"node1", true, false, true};
  RollingMember s2{"node2", false, true, true};
  RollingMember s3{"node3", false, true, false};
  RollingMember p1_done{"node1", true, false, false};
  RollingMember s2_done{"node2", false, true, false};
  struct Case {
    const char* name;
    std::vector<RollingMember> members;
    std::vector<RollingStep> steps;
  };
  std::vector<Case> cases = {
      {"a standby and the primary wait",
       {p1, s2, s3},
       {{Kind::kRestart, "node2"}, {Kind::kSwitchover, "node3"}, {Kind::kRestart, "node1"}}},
      {"only a standby waits", {p1_done, s2, s3}, {{Kind::kRestart, "node2"}}},
      {"only the primary waits",
       {p1, s2_done, s3},
       {{Kind::kSwitchover, "node3"}, {Kind::kRestart, "node1"}}},
      {"nobody waits", {p1_done, s2_done, s3}, {}},
  };
  for (const Case& each : cases) {
    auto steps = plan_rolling_restart(each.members, {"node3", "node2"}, true);
    ASSERT_TRUE(steps) << each.name << ": " << steps.error().message;
    EXPECT_EQ(*steps, each.steps) << each.name;
  }
  // A standby down: refused, even though it does not wait for a restart itself.
  auto refused = plan_rolling_restart({p1, s2, {"node3", false, false, false}}, {"node2"}, true);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("node3 does not stream"), std::string::npos);
}

}  // namespace
}  // namespace tandem
