#include "core/rejoin_plan.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

Lsn at(const char* text) { return Lsn::parse(text).value(); }

TEST(PlanRejoin, EveryBranch) {
  // The primary is on timeline 3; it left timeline 1 at 0/3000000 and timeline 2 at 0/5000000.
  TimelineHistory history(3, {{1, at("0/3000000"), ""}, {2, at("0/5000000"), ""}});
  Lsn primary_end = at("0/7000000");
  struct Case {
    const char* name;
    WalPosition node;
    RejoinMethod method;
    std::optional<Lsn> diverged_at;
  };
  const Case cases[] = {
      {"same timeline, behind", {3, at("0/6000000")}, RejoinMethod::kFollow, std::nullopt},
      {"same timeline, ahead", {3, at("0/7000000")}, RejoinMethod::kRefuse, std::nullopt},
      {"old timeline, stopped before the switch",
       {2, at("0/4FFFFF0")},
       RejoinMethod::kFollow,
       std::nullopt},
      {"old timeline, record at the switch point (crash recovery checkpoint)",
       {2, at("0/5000000")},
       RejoinMethod::kRewind,
       at("0/5000000")},
      {"old timeline, wrote past the switch",
       {2, at("0/5800000")},
       RejoinMethod::kRewind,
       at("0/5000000")},
      {"oldest timeline, diverged", {1, at("0/3100000")}, RejoinMethod::kRewind, at("0/3000000")},
      {"a timeline the primary never had",
       {4, at("0/1000000")},
       RejoinMethod::kRewind,
       std::nullopt},
  };
  for (const Case& c : cases) {
    RejoinPlan plan = plan_rejoin(c.node, history, primary_end);
    EXPECT_EQ(plan.method, c.method) << c.name << ": " << plan.reason;
    EXPECT_EQ(plan.diverged_at, c.diverged_at) << c.name;
    EXPECT_FALSE(plan.reason.empty()) << c.name;
  }
}

TEST(PlanRejoin, FirstTimelineHasNoHistory) {
  RejoinPlan plan = plan_rejoin({1, at("0/2000000")}, TimelineHistory(), at("0/3000000"));
  EXPECT_EQ(plan.method, RejoinMethod::kFollow);
}

}  // namespace
}  // namespace tandem
