// Timeline claims: no timeline number is ever used by two histories, and a node behind the
// newest claim does not promote.
#include "ops/timeline_claim.h"

#include <gtest/gtest.h>

#include "dcs/memory_store.h"
#include "fake_node_controller.h"

namespace tandem {
namespace {

TEST(TimelineClaim, BehindTheNewestClaim) {
  struct Case {
    std::optional<TimelineClaim> claim;
    TimelineId timeline;
    bool may_promote;
  };
  const std::vector<Case> cases = {
      {std::nullopt, 1, true},                                  // nothing claimed yet
      {TimelineClaim{.timeline = 2, .by = "node1"}, 2, true},   // on the newest
      {TimelineClaim{.timeline = 2, .by = "node1"}, 5, true},   // ahead of the claims
      {TimelineClaim{.timeline = 3, .by = "node1"}, 2, false},  // another promoted past it
      {TimelineClaim{.timeline = 3, .by = "node2"}, 2, true},   // its own unfinished claim
      {TimelineClaim{.timeline = 4, .by = "node2"}, 2, false},  // its own, but two ahead
      // Its own, but it ran on it and has lost that history since (fresh seed 273562385).
      {TimelineClaim{.timeline = 3, .by = "node2", .promoted = true}, 2, false},
      {TimelineClaim{.timeline = 3, .by = "node2", .promoted = true}, 3, true},
  };
  for (const Case& c : cases) {
    auto why = behind_claimed_timeline(c.claim, "node2", c.timeline);
    EXPECT_EQ(!why.has_value(), c.may_promote)
        << "timeline " << c.timeline << ": " << why.value_or("may promote");
  }
}

TEST(TimelineClaim, MarkedOnceItsClaimantRunsOnIt) {
  struct Case {
    std::optional<TimelineClaim> claim;
    TimelineId timeline;
    bool mark;
  };
  const std::vector<Case> cases = {
      {std::nullopt, 2, false},
      {TimelineClaim{.timeline = 2, .by = "node2"}, 2, true},
      {TimelineClaim{.timeline = 2, .by = "node2"}, 1, false},  // not yet promoted
      {TimelineClaim{.timeline = 2, .by = "node2"}, 0, false},  // not read
      {TimelineClaim{.timeline = 2, .by = "node1"}, 2, false},  // another's
      {TimelineClaim{.timeline = 2, .by = "node2", .promoted = true}, 2, false},  // marked
  };
  for (const Case& c : cases) {
    EXPECT_EQ(claim_to_mark(c.claim, "node2", c.timeline), c.mark) << "timeline " << c.timeline;
  }
}

// Marked promoted, a claim is no longer its claimant's to try again: a node reinitialized
// from a node that never promoted is back on the timeline before, and would otherwise promote
// onto the number its lost history used (fresh seed 273562385).
TEST(TimelineClaim, AMarkedClaimIsNotItsClaimantsToTakeAgain) {
  testing::FakeClock clock;
  MemoryStore store(clock);
  ClusterLayout layout("c");
  auto claim = [&] {
    auto snapshot = store.read(layout.prefix());
    return snapshot ? layout.view(*snapshot).timeline_claim : std::nullopt;
  };
  ASSERT_EQ(claim_timeline(store, layout, "node2", 1).value_or(0), 2u);
  ASSERT_TRUE(mark_claim_promoted(store, layout, "node2", 1));  // not on it yet: unmarked
  ASSERT_TRUE(mark_claim_promoted(store, layout, "node1", 2));  // not its claim
  ASSERT_TRUE(claim());
  EXPECT_FALSE(claim()->promoted);
  ASSERT_TRUE(mark_claim_promoted(store, layout, "node2", 2));
  ASSERT_TRUE(claim());
  EXPECT_TRUE(claim()->promoted);
  EXPECT_EQ(claim()->timeline, 2u);
  auto again = claim_timeline(store, layout, "node2", 1);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("behind timeline 2 claimed by node2"), std::string::npos)
      << again.error().message;
  EXPECT_EQ(claim_timeline(store, layout, "node2", 1, true).value_or(0), 3u);
  EXPECT_FALSE(claim()->promoted);
  // A newer claim is left as it is.
  ASSERT_EQ(claim_timeline(store, layout, "node1", 3).value_or(0), 4u);
  ASSERT_TRUE(mark_claim_promoted(store, layout, "node2", 3));
  EXPECT_EQ(claim()->by, "node1");
  EXPECT_FALSE(claim()->promoted);
}

TEST(TimelineClaim, OneNumberOneClaimant) {
  testing::FakeClock clock;
  MemoryStore store(clock);
  ClusterLayout layout("c");
  auto first = claim_timeline(store, layout, "node1", 1);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(*first, 2u);
  // A second promotion from timeline 1 — two `tandem promote` at once, or a node that missed
  // the first promotion — is refused: timeline 2 is taken.
  auto second = claim_timeline(store, layout, "node2", 1);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  EXPECT_NE(second.error().message.find("behind timeline 2 claimed by node1"), std::string::npos)
      << second.error().message;
  // node1 retrying its own unfinished claim may; a node that followed timeline 2 claims 3.
  EXPECT_EQ(claim_timeline(store, layout, "node1", 1).value_or(0), 2u);
  EXPECT_EQ(claim_timeline(store, layout, "node3", 2).value_or(0), 3u);
  EXPECT_FALSE(claim_timeline(store, layout, "node1", 1));
  auto snapshot = store.read(layout.prefix());
  ASSERT_TRUE(snapshot);
  auto claim = layout.view(*snapshot).timeline_claim;
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->timeline, 3u);
  EXPECT_EQ(claim->by, "node3");
}

// Forced with --allow-data-loss, a node behind the newest claim claims the timeline after it
// (never the number another history uses), and keeps that claim when it tries again.
TEST(TimelineClaim, AForcedPromotionClaimsBeyondTheNewest) {
  testing::FakeClock clock;
  MemoryStore store(clock);
  ClusterLayout layout("c");
  ASSERT_TRUE(claim_timeline(store, layout, "node2", 1));  // node2 on timeline 2
  EXPECT_FALSE(claim_timeline(store, layout, "node3", 1));
  EXPECT_EQ(claim_timeline(store, layout, "node3", 1, true).value_or(0), 3u);
  EXPECT_EQ(claim_timeline(store, layout, "node3", 1, true).value_or(0), 3u);  // kept
  EXPECT_EQ(claim_timeline(store, layout, "node1", 1, true).value_or(0), 4u);
  EXPECT_FALSE(claim_timeline(store, layout, "node3", 1));  // not forced: behind node1's
}

}  // namespace
}  // namespace tandem
