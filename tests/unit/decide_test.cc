#include "core/decide.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "core/role_transitions.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;
using TimePoint = std::chrono::steady_clock::time_point;
using Names = std::vector<std::string>;

const TimePoint kNow{std::chrono::seconds(1000)};

Lsn at(std::uint64_t value) { return Lsn(value); }

MemberRecord standby(const std::string& name, std::uint64_t received, TimelineId timeline = 1) {
  return {
      .name = name, .state = PgState::kStandby, .timeline = timeline, .received_lsn = at(received)};
}

ClusterView view_with(std::optional<std::string> leader, std::vector<MemberRecord> members) {
  ClusterView view{.initialized = true, .initialized_by = "node1"};
  if (leader) view.leader = LeaderRecord{*leader, 7};
  for (MemberRecord& member : members) view.members[member.name] = member;
  return view;
}

NodeObservation observed(PgState state, std::string upstream = "") {
  return {.state = state,
          .timeline = 1,
          .upstream = std::move(upstream),
          .lease_renewed_at = kNow - milliseconds(100)};
}

struct Case {
  const char* name;
  std::optional<ClusterView> view;
  NodeObservation node;
  Action expected;
  const char* reason_has;
  HaConfig config = {.self = "node2"};
};

// Each case's action and reason, and that the action is an edge of the transition table.
void check(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    Decision decision = decide(c.view, c.node, c.config, kNow);
    EXPECT_EQ(decision.action, c.expected)
        << c.name << ": got " << action_name(decision.action) << " (" << decision.reason << ")";
    EXPECT_NE(decision.reason.find(c.reason_has), std::string::npos)
        << c.name << ": " << decision.reason;
    if (decision.action != Action::kNone) {
      EXPECT_NE(find_transition(c.node.state, decision.action), nullptr)
          << c.name << ": decide chose an edge the transition table lacks";
    }
  }
}

// A refusal that says `expected` (nullptr: none).
void expect_refusal(const std::optional<std::string>& refused, const char* expected,
                    const char* name) {
  if (expected == nullptr) {
    EXPECT_FALSE(refused) << name << ": " << *refused;
  } else {
    ASSERT_TRUE(refused) << name;
    EXPECT_NE(refused->find(expected), std::string::npos) << name << ": " << *refused;
  }
}

TEST(Decide, EveryBranch) {
  NodeObservation late_primary = observed(PgState::kPrimary);
  late_primary.lease_renewed_at = kNow - milliseconds(700);
  NodeObservation never_leader = observed(PgState::kPrimary);
  never_leader.lease_renewed_at.reset();
  NodeObservation former_primary = observed(PgState::kStopped);
  former_primary.data_was_primary = true;
  NodeObservation stuck_standby = observed(PgState::kStandby, "node1");
  stuck_standby.not_streaming_for = milliseconds(5000);
  ClusterView paused = view_with("node2", {});
  paused.paused = true;
  ClusterView uninitialized;
  ClusterView unfinished_bootstrap =
      view_with(std::nullopt, {MemberRecord{.name = "node1", .state = PgState::kNoData},
                               MemberRecord{.name = "node2", .state = PgState::kNoData}});
  unfinished_bootstrap.initialized_by = "node2";
  ClusterView bootstrapped_before = unfinished_bootstrap;  // a primary led once
  bootstrapped_before.timeline_claim = TimelineClaim{.timeline = 1, .by = "node2"};
  ClusterView led_before = unfinished_bootstrap;  // a primary published its position once
  led_before.last_leader_lsn = at(100);
  ClusterView others_have_data = unfinished_bootstrap;
  others_have_data.members["node1"].state = PgState::kStopped;
  ClusterView lagging = view_with(std::nullopt, {standby("node2", 100), standby("node3", 90)});
  lagging.last_leader_lsn = at(100 + (32 << 20));
  MemberRecord tagged = standby("node2", 500);
  tagged.nofailover = true;

  auto with_request = [](ClusterView view, SwitchoverRequest request) {
    view.switchover = request;
    return view;
  };
  auto held_by_node2 = [](ClusterView view) {
    view.leader = LeaderRecord{"node2", 9};
    return view;
  };
  ClusterView led_by_me = view_with("node2", {standby("node1", 500), standby("node3", 400)});
  MemberRecord stopped_member{.name = "node4", .state = PgState::kStopped};
  led_by_me.members["node4"] = stopped_member;
  ClusterView lagging_self = lagging;

  ClusterView sync_view = lagging;  // node2 is 32 MB behind, node3 further
  sync_view.sync_standbys = {"node2"};
  ClusterView sync_other = view_with(std::nullopt, {standby("node2", 900), standby("node3", 10)});
  sync_other.sync_standbys = {"node3"};
  // ha.synchronous_node_count 2: either named standby has every acknowledged commit.
  ClusterView sync_second = lagging;
  sync_second.sync_standbys = {"node3", "node2"};
  ClusterView sync_two_others = sync_other;
  sync_two_others.sync_standbys = {"node3", "node4"};
  ClusterView sync_none = view_with(std::nullopt, {standby("node2", 900)});
  sync_none.sync_standbys = std::vector<std::string>();
  ClusterView sync_last_leader = sync_none;  // node2 led, alone: it has every commit
  sync_last_leader.sync_leader = "node2";
  ClusterView sync_other_leader = sync_none;
  sync_other_leader.sync_leader = "node1";
  ClusterView sync_named_me = sync_other;  // node1 led, naming node2
  sync_named_me.sync_standbys = {"node2"};
  sync_named_me.sync_leader = "node1";
  const HaConfig sync_config{.self = "node2", .synchronous_mode = true};
  // No `sync` record at all: the node that bootstrapped is the last leader, unless a timeline
  // was ever claimed (fresh seed 1100291983).
  ClusterView sync_no_record = view_with(std::nullopt, {standby("node2", 900)});
  sync_no_record.initialized_by = "node2";
  ClusterView sync_no_record_other = sync_no_record;
  sync_no_record_other.initialized_by = "node1";
  ClusterView sync_no_record_claimed = sync_no_record;
  sync_no_record_claimed.timeline_claim = TimelineClaim{.timeline = 2, .by = "node2"};
  // node1 claimed timeline 2 and is stopped: it may be the last primary, back soon in place.
  ClusterView claimed_ahead =
      view_with(std::nullopt,
                {standby("node2", 900), MemberRecord{.name = "node1", .state = PgState::kStopped}});
  claimed_ahead.timeline_claim = TimelineClaim{.timeline = 2, .by = "node1"};
  ClusterView claimant_gone = claimed_ahead;  // its record expired: its agent is dead or cut off
  claimant_gone.members.erase("node1");
  ClusterView claimant_never_promoted = claimed_ahead;  // alive, still a standby, no lease
  claimant_never_promoted.members["node1"] = standby("node1", 800);
  ClusterView claimant_gone_sync = claimant_gone;  // it named itself alone in sync first
  claimant_gone_sync.sync_standbys = std::vector<std::string>();
  claimant_gone_sync.sync_leader = "node1";
  ClusterView claimed_by_me = view_with(std::nullopt, {standby("node2", 900)});
  claimed_by_me.timeline_claim = TimelineClaim{.timeline = 2, .by = "node2"};
  ClusterView claimed_behind = view_with(std::nullopt, {standby("node2", 900, 3)});
  claimed_behind.timeline_claim = TimelineClaim{.timeline = 3, .by = "node1"};
  NodeObservation on_timeline_3 = observed(PgState::kStandby);
  on_timeline_3.timeline = 3;
  ClusterView store_replaced;  // no initialize key
  NodeObservation pointed_nowhere = observed(PgState::kStarting);
  NodeObservation pointed_at_leader = observed(PgState::kStarting, "node1");
  ClusterView last_claim_mine = view_with(std::nullopt, {});
  last_claim_mine.timeline_claim = TimelineClaim{.timeline = 1, .by = "node2"};
  NodeObservation failing_rejoins = former_primary;
  failing_rejoins.rejoin_failures = kAttemptsBeforeEscalating;
  failing_rejoins.rejoin_failing_for = kFailingBeforeEscalating;
  NodeObservation quickly_failing_rejoins = failing_rejoins;  // a passing condition, maybe
  quickly_failing_rejoins.rejoin_failing_for = milliseconds(300);
  NodeObservation failing_follower = stuck_standby;
  failing_follower.rejoin_failures = kAttemptsBeforeEscalating + 2;
  failing_follower.rejoin_failing_for = milliseconds(60'000);
  NodeObservation failing_starts = former_primary;
  failing_starts.start_failures = kAttemptsBeforeEscalating;
  failing_starts.start_failing_for = milliseconds(12'000);
  NodeObservation quickly_failing_starts = failing_starts;
  quickly_failing_starts.start_failing_for = milliseconds(2'000);
  NodeObservation primary_recovering = observed(PgState::kStarting);
  primary_recovering.data_was_primary = true;
  NodeObservation recovery_stuck = pointed_at_leader;
  recovery_stuck.recovery_stuck_for = kRecoveryStuckBeforeReclone;
  NodeObservation recovery_waiting = pointed_at_leader;
  recovery_waiting.recovery_stuck_for = kRecoveryStuckBeforeReclone - milliseconds(1);
  ClusterView led_by_running_node1 = view_with("node1", {});
  led_by_running_node1.members["node1"] = {.name = "node1", .state = PgState::kPrimary};
  NodeObservation recovery_stuck_elsewhere = recovery_stuck;
  recovery_stuck_elsewhere.upstream = "node3";

  const std::vector<Case> cases = {
      {"synchronous mode: the synchronous standby takes over, however far behind", sync_view,
       observed(PgState::kStandby), Action::kTakeOver, "most advanced", sync_config},
      {"synchronous mode: the second of two synchronous standbys takes over too", sync_second,
       observed(PgState::kStandby), Action::kTakeOver, "most advanced", sync_config},
      {"synchronous mode: a standby neither of two synchronous standbys may not", sync_two_others,
       observed(PgState::kStandby), Action::kNone,
       "node2 is neither a synchronous standby (node3 and node4) nor the last leader", sync_config},
      {"synchronous mode: a more advanced asynchronous standby may not", sync_other,
       observed(PgState::kStandby), Action::kNone,
       "node2 is neither the synchronous standby (node3) nor the last leader", sync_config},
      {"synchronous mode: nobody synchronous, nobody takes over", sync_none,
       observed(PgState::kStandby), Action::kNone, "no standby is synchronous", sync_config},
      {"synchronous mode: the last leader comes back after a full stop", sync_last_leader,
       observed(PgState::kStandby), Action::kTakeOver, "most advanced", sync_config},
      {"synchronous mode: no record, this node bootstrapped the cluster and nobody promoted",
       sync_no_record, observed(PgState::kStandby), Action::kTakeOver, "most advanced",
       sync_config},
      {"synchronous mode: no record, another bootstrapped the cluster", sync_no_record_other,
       observed(PgState::kStandby), Action::kNone, "node2 is not the last leader (node1)",
       sync_config},
      {"synchronous mode: no record, but a timeline was claimed since the bootstrap",
       sync_no_record_claimed, observed(PgState::kStandby), Action::kNone,
       "no standby is synchronous", sync_config},
      {"synchronous mode: nobody synchronous, another was the last leader", sync_other_leader,
       observed(PgState::kStandby), Action::kNone, "node2 is not the last leader (node1)",
       sync_config},
      {"a timeline claimed by another node ahead of this one", claimed_ahead,
       observed(PgState::kStandby), Action::kNone, "behind timeline 2 claimed by node1"},
      {"a claim left by a node that is gone: take over beyond it", claimant_gone,
       observed(PgState::kStandby), Action::kTakeOver,
       "timeline 2 was claimed by node1, which leads no more and is gone: claiming the next"},
      {"a claim left by a standby that never promoted: the most advanced takes over",
       claimant_never_promoted, observed(PgState::kStandby), Action::kTakeOver,
       "claiming the next"},
      {"synchronous mode: a claim left by a node that is gone holds (it alone had every commit)",
       claimant_gone_sync, observed(PgState::kStandby), Action::kNone,
       "not the last leader (node1)", sync_config},
      {"holds the lease but another node claimed a newer timeline",
       [&] {
         ClusterView view = claimed_ahead;
         view.leader = LeaderRecord{"node2", 9};
         return view;
       }(),
       observed(PgState::kStandby), Action::kReleaseLease, "behind timeline 2 claimed by node1"},
      {"a claim of this node's own that did not complete", claimed_by_me,
       observed(PgState::kStandby), Action::kTakeOver, "most advanced"},
      {"on the claimed timeline", claimed_behind, on_timeline_3, Action::kTakeOver,
       "most advanced"},
      {"store replaced under a running primary, in time", store_replaced,
       observed(PgState::kPrimary), Action::kNone, "no record of this cluster"},
      {"store replaced under a running primary, late", store_replaced, late_primary, Action::kFence,
       "no record of this cluster"},
      {"store replaced under a stopped node: no election", store_replaced,
       observed(PgState::kStopped), Action::kNone, "changing nothing"},
      {"standby starting, pointed at nobody", view_with("node1", {}), pointed_nowhere,
       Action::kFollow, "but node1 leads: follow it"},
      {"former primary starting: not repointed", view_with("node1", {}), primary_recovering,
       Action::kNone, "starting"},
      {"former primary whose rejoins keep failing", led_by_running_node1, failing_rejoins,
       Action::kReclone, "3 rejoins in a row failed over 10 s: clone node1 again"},
      {"former primary whose rejoins keep failing while the leader does not run as a primary",
       view_with("node1", {standby("node1", 500)}), failing_rejoins, Action::kRejoin,
       "node1 does not run as a primary: no copy of it replaces this node's data"},
      {"the same, the leader's record missing", view_with("node1", {}), failing_rejoins,
       Action::kRejoin, "does not run as a primary"},
      {"former primary whose rejoins failed three times in a moment", view_with("node1", {}),
       quickly_failing_rejoins, Action::kRejoin, "rejoin it"},
      {"leader whose restarts failed three times in a moment", view_with("node2", {}),
       quickly_failing_starts, Action::kStartPrimary, "restart it in place"},
      {"standby whose rejoins keep failing", led_by_running_node1, failing_follower,
       Action::kReclone, "moved aside"},
      {"standby whose rejoins keep failing while the leader does not run as a primary",
       view_with("node1", {standby("node1", 500)}), failing_follower, Action::kRejoin,
       "node1 does not run as a primary"},
      {"leader whose PostgreSQL does not come back", view_with("node2", {}), failing_starts,
       Action::kReleaseLease, "after 3 restarts in place over 12 s: release the lease"},
      {"switchover to a named standby", with_request(led_by_me, {.from = "node2", .to = "node3"}),
       observed(PgState::kPrimary), Action::kHandOver, "hand the lease to node3"},
      {"switchover to the best standby", with_request(led_by_me, {.from = "node2"}),
       observed(PgState::kPrimary), Action::kHandOver, "hand the lease to node1"},
      {"switchover to a stopped node", with_request(led_by_me, {.from = "node2", .to = "node4"}),
       observed(PgState::kPrimary), Action::kRenewLease, "not eligible"},
      {"failover past the leader to an ineligible node, no loss allowed",
       with_request(led_by_me, {.from = "node2", .to = "node4", .force = true}),
       observed(PgState::kPrimary), Action::kRenewLease, "not eligible"},
      {"failover past the leader to a stopped node, loss allowed",
       with_request(led_by_me,
                    {.from = "node2", .to = "node4", .force = true, .allow_data_loss = true}),
       observed(PgState::kPrimary), Action::kRenewLease, "not a running standby"},
      {"switchover with no standby", with_request(view_with("node2", {}), {.from = "node2"}),
       observed(PgState::kPrimary), Action::kRenewLease, "no standby is eligible"},
      {"switchover meant for an old leader", with_request(led_by_me, {.from = "node1"}),
       observed(PgState::kPrimary), Action::kRenewLease, "renew it"},
      {"lease handed over by a switchover", with_request(view_with("node2", {}), {.from = "node1"}),
       observed(PgState::kStandby), Action::kPromote, "node1 handed over the lease"},
      {"forced failover to this node",
       with_request(view_with(std::nullopt, {standby("node2", 10), standby("node3", 900)}),
                    {.to = "node2", .force = true}),
       observed(PgState::kStandby), Action::kTakeOver, "failover to this node was requested"},
      {"forced failover to another node",
       with_request(view_with(std::nullopt, {standby("node2", 900), standby("node3", 10)}),
                    {.to = "node3", .force = true}),
       observed(PgState::kStandby), Action::kNone, "a failover to node3 was requested"},
      {"forced failover to a node with no live agent holds nobody back",
       with_request(view_with(std::nullopt, {standby("node2", 900)}),
                    {.to = "node3", .force = true}),
       observed(PgState::kStandby), Action::kTakeOver, "most advanced eligible standby"},
      {"forced failover to a node behind the newest timeline holds nobody back",
       with_request(view_with(std::nullopt, {standby("node2", 900, 2), standby("node3", 950)}),
                    {.to = "node3", .force = true}),
       observed(PgState::kStandby), Action::kTakeOver, "most advanced eligible standby"},
      {"forced failover to a lagging node",
       with_request(lagging_self, {.to = "node2", .force = true}), observed(PgState::kStandby),
       Action::kNone, "--allow-data-loss"},
      {"forced failover to a lagging node, loss allowed",
       with_request(lagging_self, {.to = "node2", .force = true, .allow_data_loss = true}),
       observed(PgState::kStandby), Action::kTakeOver, "data loss allowed by the operator"},
      {"store down, primary still in time", std::nullopt, observed(PgState::kPrimary),
       Action::kNone, "fencing at 600 ms"},
      {"store down, primary late", std::nullopt, late_primary, Action::kFence,
       "the store is unreachable; lease last renewed 700 ms ago"},
      {"store down, standby", std::nullopt, observed(PgState::kStandby, "node1"), Action::kNone,
       "changing nothing"},
      {"paused leader renews only", paused, observed(PgState::kPrimary), Action::kRenewLease,
       "paused"},
      {"a lone standby takes over", view_with(std::nullopt, {standby("node2", 10)}),
       observed(PgState::kStandby), Action::kTakeOver, "most advanced"},
      {"paused, really", paused, observed(PgState::kStopped), Action::kNone, "paused"},
      {"empty cluster", uninitialized, observed(PgState::kNoData), Action::kBootstrap,
       "not initialised"},
      {"no data, a leader exists", view_with("node1", {}), observed(PgState::kNoData),
       Action::kClone, "clone node1"},
      {"no data, no leader", view_with(std::nullopt, {}), observed(PgState::kNoData), Action::kNone,
       "no leader to clone from"},
      {"no data, its own bootstrap unfinished", unfinished_bootstrap, observed(PgState::kNoData),
       Action::kBootstrap, "bootstrap again"},
      {"no data, its own bootstrap led once", bootstrapped_before, observed(PgState::kNoData),
       Action::kNone, "no leader to clone from"},
      {"no data, its own bootstrap, a primary published once", led_before,
       observed(PgState::kNoData), Action::kNone, "no leader to clone from"},
      {"no data, its own bootstrap, others have data", others_have_data, observed(PgState::kNoData),
       Action::kNone, "no leader to clone from"},
      {"leader with PostgreSQL down", view_with("node2", {}), former_primary, Action::kStartPrimary,
       "restart it in place"},
      {"leader whose promotion did not finish (its data a standby's)", view_with("node2", {}),
       observed(PgState::kStopped), Action::kStartStandby,
       "the promotion did not finish): start it as a standby, then promote"},
      {"leader whose standby data does not come back", view_with("node2", {}),
       [&] {
         NodeObservation node = failing_starts;
         node.data_was_primary = false;
         return node;
       }(),
       Action::kReleaseLease, "release the lease"},
      {"former primary while another leads", view_with("node1", {}), former_primary,
       Action::kRejoin, "former primary"},
      {"stopped standby", view_with("node1", {}), observed(PgState::kStopped),
       Action::kStartStandby, "standby of node1"},
      {"stopped, nobody leads", view_with(std::nullopt, {}), observed(PgState::kStopped),
       Action::kStartStandby, "join the election"},
      {"stopped last leader, nobody promoted since", last_claim_mine, former_primary,
       Action::kAcquireLease, "take the lease back and restart in place"},
      {"stopped former leader, another promoted since", claimed_ahead, former_primary,
       Action::kStartStandby, "join the election"},
      {"leader restarting", view_with("node2", {}), observed(PgState::kStarting),
       Action::kRenewLease, "keep the lease"},
      {"standby starting", view_with("node1", {}), pointed_at_leader, Action::kNone, "starting"},
      {"standby starting, its recovery waiting 30 s for one WAL segment", led_by_running_node1,
       recovery_stuck, Action::kReclone,
       "waiting 30 s for WAL that nobody streams to it (removed on node1?): clone node1 again"},
      {"standby starting, its recovery waiting a moment less", led_by_running_node1,
       recovery_waiting, Action::kNone, "starting"},
      {"standby starting stuck, but the leader does not run as a primary: nothing to stream",
       view_with("node1", {}), recovery_stuck, Action::kNone, "starting"},
      {"standby starting stuck, pointed elsewhere: follow first", view_with("node1", {}),
       recovery_stuck_elsewhere, Action::kFollow, "follow it"},
      {"leader restarting, its recovery waiting", view_with("node2", {}), recovery_stuck,
       Action::kRenewLease, "keep the lease"},
      {"healthy primary", view_with("node2", {}), observed(PgState::kPrimary), Action::kRenewLease,
       "renew"},
      {"primary whose renewals fail", view_with("node2", {}), late_primary, Action::kRenewLease,
       "past the 600 ms deadline: renew it now or fence"},
      {"primary while another leads", view_with("node1", {}), observed(PgState::kPrimary),
       Action::kDemote, "node1 holds the lease"},
      {"primary, lease lapsed, in time", view_with(std::nullopt, {}), observed(PgState::kPrimary),
       Action::kAcquireLease, "retake"},
      {"primary, lease lapsed, late", view_with(std::nullopt, {}), late_primary, Action::kFence,
       "the lease lapsed"},
      {"primary that never held the lease", view_with(std::nullopt, {}), never_leader,
       Action::kFence, "never held the lease"},
      {"won the lease, still in recovery", view_with("node2", {}),
       observed(PgState::kStandby, "node1"), Action::kPromote, "promote"},
      // Synchronous mode: the lease alone proves no commits (fresh seed 457897527761).
      {"synchronous: holds the lease in recovery, the record names another",
       held_by_node2(sync_other_leader), observed(PgState::kStandby), Action::kReleaseLease,
       "holds the lease while in recovery, but no standby is synchronous and node2 is not the last "
       "leader (node1)",
       sync_config},
      {"synchronous: holds the lease in recovery, named the synchronous standby",
       held_by_node2(sync_named_me), observed(PgState::kStandby), Action::kPromote,
       "holds the lease while in recovery: promote", sync_config},
      {"synchronous: holds the lease in recovery, named itself the last leader",
       held_by_node2(sync_last_leader), observed(PgState::kStandby), Action::kPromote,
       "holds the lease while in recovery: promote", sync_config},
      {"synchronous: holds the lease in recovery, a failover here with data loss allowed",
       held_by_node2(with_request(sync_other_leader,
                                  {.to = "node2", .force = true, .allow_data_loss = true})),
       observed(PgState::kStandby), Action::kPromote, "holds the lease while in recovery: promote",
       sync_config},
      {"synchronous: handed over by a switchover, the record names another",
       held_by_node2(with_request(sync_other, {.from = "node1"})), observed(PgState::kStandby),
       Action::kReleaseLease, "node2 is neither the synchronous standby (node3) nor the last leader",
       sync_config},
      {"standby of the old leader", view_with("node3", {}), observed(PgState::kStandby, "node1"),
       Action::kFollow, "node3 leads"},
      {"standby that cannot follow", view_with("node1", {}), stuck_standby, Action::kRejoin,
       "not streaming for 5000 ms"},
      {"healthy standby", view_with("node1", {}), observed(PgState::kStandby, "node1"),
       Action::kNone, "a standby of node1"},
      {"election: best candidate",
       view_with(std::nullopt, {standby("node2", 500), standby("node3", 400)}),
       observed(PgState::kStandby, "node1"), Action::kTakeOver, "most advanced"},
      {"election: another is ahead",
       view_with(std::nullopt, {standby("node2", 400), standby("node3", 500)}),
       observed(PgState::kStandby, "node1"), Action::kNone, "node3 is the better candidate"},
      {"election: a tie goes to the lower name",
       view_with(std::nullopt, {standby("node2", 500), standby("node1", 500)}),
       observed(PgState::kStandby), Action::kNone, "node1 is the better candidate"},
      {"election: too far behind", lagging, observed(PgState::kStandby), Action::kNone,
       "over the 16777216 allowed"},
      {"election: tagged nofailover", view_with(std::nullopt, {tagged, standby("node3", 10)}),
       observed(PgState::kStandby), Action::kNone, "tagged nofailover"},
      {"election: this agent is nofailover",
       view_with(std::nullopt, {standby("node2", 500)}),
       observed(PgState::kStandby),
       Action::kNone,
       "nofailover",
       {.self = "node2", .nofailover = true}},
      {"election: behind on timeline",
       view_with(std::nullopt, {standby("node2", 900, 1), standby("node3", 100, 2)}),
       observed(PgState::kStandby), Action::kNone, "behind timeline 2"},
      {"election: not yet published", view_with(std::nullopt, {standby("node3", 100)}),
       observed(PgState::kStandby), Action::kNone, "not yet published"},
  };
  check(cases);
}

// Quorum fencing (etcd): a primary writes while a majority of the agents answer it OR its lease
// was renewed within renew_deadline; a standby takes over only when both have failed.
TEST(Decide, QuorumFencing) {
  const HaConfig quorum{.self = "node2", .quorum_fencing = true};
  auto with_contact = [](NodeObservation node, milliseconds age,
                         std::vector<std::string> fenced = {},
                         std::vector<std::string> blockers = {}) {
    node.majority_contact_age = age;
    node.proven_fenced = std::move(fenced);
    node.takeover_blockers = std::move(blockers);
    return node;
  };
  auto lease_unchanged = [](NodeObservation node, milliseconds unchanged) {
    node.lease_unchanged_for = unchanged;
    return node;
  };
  NodeObservation late_primary = observed(PgState::kPrimary);
  late_primary.lease_renewed_at = kNow - milliseconds(5000);  // the store is long gone
  NodeObservation late_stopped = observed(PgState::kStopped);
  late_stopped.data_was_primary = true;
  late_stopped.lease_renewed_at = kNow - milliseconds(5000);
  auto late_stopped_renewed = [&] {  // a former primary's data, its lease renewed in time
    NodeObservation node = late_stopped;
    node.lease_renewed_at = kNow - milliseconds(100);
    return node;
  };
  NodeObservation follower = observed(PgState::kStandby, "node1");
  ClusterView led_by_node1 = view_with("node1", {standby("node2", 500), standby("node3", 400)});
  ClusterView nobody = view_with(std::nullopt, {standby("node2", 500), standby("node3", 400)});
  ClusterView adopting_node1 = led_by_node1;
  adopting_node1.adopting = "node1";
  ClusterView adopting_another = led_by_node1;
  adopting_another.adopting = "node3";
  const milliseconds proof = proof_of_fencing(quorum);
  const std::vector<Case> cases = {
      {"store down, primary reaches a majority: keeps writing", std::nullopt,
       with_contact(late_primary, milliseconds(50)), Action::kNone, "keep accepting writes",
       quorum},
      {"store down, primary alone, lease late: fences", std::nullopt,
       with_contact(late_primary, milliseconds(700)), Action::kFence,
       "store is unreachable, no answer from a majority of the agents for 700 ms and lease last "
       "renewed 5000 ms ago",
       quorum},
      {"store down a moment, primary alone, lease fresh: keeps writing until the deadline",
       std::nullopt, with_contact(observed(PgState::kPrimary), milliseconds(700)), Action::kNone,
       "no majority answers; lease last renewed 100 ms ago, fencing at 600 ms", quorum},
      {"store up, primary alone, lease late: fences", view_with("node2", {}),
       with_contact(late_primary, milliseconds(650)), Action::kFence,
       "no answer from a majority of the agents for 650 ms and lease last renewed 5000 ms ago",
       quorum},
      {"store up, primary alone, lease renewed (a standby's host cut off): keeps writing",
       view_with("node2", {}), with_contact(observed(PgState::kPrimary), milliseconds(650)),
       Action::kRenewLease, "the lease alone keeps it writing", quorum},
      {"primary with a majority renews however late", view_with("node2", {}),
       with_contact(late_primary, milliseconds(20)), Action::kRenewLease, "reaches a majority",
       quorum},
      {"lease lapsed in the store, majority kept: retake it", view_with(std::nullopt, {}),
       with_contact(late_primary, milliseconds(20)), Action::kAcquireLease, "kept a majority",
       quorum},
      {"lease gone from the store, no majority: fences", view_with(std::nullopt, {}),
       with_contact(observed(PgState::kPrimary), milliseconds(700)), Action::kFence,
       "the lease is gone from the store and no answer from a majority", quorum},
      {"another holds the lease: demote even with a majority", view_with("node3", {}),
       with_contact(observed(PgState::kPrimary), milliseconds(20)), Action::kDemote,
       "node3 holds the lease", quorum},
      {"leader down without a majority or a renewal stays down", view_with("node2", {}),
       with_contact(late_stopped, milliseconds(900)), Action::kNone, "stay down", quorum},
      {"the adopted leader, down without a majority or a renewal: restarts (its start proves "
       "the lease)",
       [] {
         ClusterView view = view_with("node2", {});
         view.adopting = "node2";
         return view;
       }(),
       with_contact(late_stopped, milliseconds(900)), Action::kStartPrimary, "restart it in place",
       quorum},
      {"leader down without a majority but renewing restarts", view_with("node2", {}),
       with_contact(late_stopped_renewed(), milliseconds(900)), Action::kStartPrimary,
       "restart it in place", quorum},
      {"leader down with a majority restarts", view_with("node2", {}),
       with_contact(late_stopped, milliseconds(30)), Action::kStartPrimary, "restart it in place",
       quorum},
      {"the leader is proven fenced and its lease unchanged: take over before it expires",
       led_by_node1, lease_unchanged(with_contact(follower, milliseconds(30), {"node1"}), proof),
       Action::kTakeOver, "node1 has not been heard from by a majority", quorum},
      {"the leader is proven fenced, but adopt has not handed its server to its agent: no "
       "watchdog fences it, no takeover",
       adopting_node1,
       lease_unchanged(with_contact(follower, milliseconds(30), {"node1"}), proof * 10),
       Action::kNone, "its agent does not run it yet", quorum},
      {"a mark naming another node: the leader proven fenced, but no election while it stays",
       adopting_another,
       lease_unchanged(with_contact(follower, milliseconds(30), {"node1"}), proof), Action::kNone,
       "node3 is being adopted", quorum},
      {"no lease, a node being adopted: no election (its server may still write)",
       [&] {
         ClusterView view = nobody;
         view.adopting = "node1";
         return view;
       }(),
       with_contact(follower, milliseconds(30), {"node1"}), Action::kNone,
       "node1 is being adopted and its agent does not run its server yet", quorum},
      {"the leader is proven fenced but renewed its lease: no takeover", led_by_node1,
       lease_unchanged(with_contact(follower, milliseconds(30), {"node1"}), proof / 2),
       Action::kNone, "renewed its lease 550 ms ago or less: it may still write", quorum},
      {"the leader is proven fenced, but another standby is better",
       view_with("node1", {standby("node2", 400), standby("node3", 500)}),
       lease_unchanged(with_contact(follower, milliseconds(30), {"node1"}), proof), Action::kNone,
       "node3 is the better candidate", quorum},
      {"the leader is not proven fenced: follow it", led_by_node1,
       lease_unchanged(with_contact(follower, milliseconds(30)), proof * 10), Action::kNone,
       "a standby of node1", quorum},
      {"no lease, but a primary may still write: no takeover", nobody,
       with_contact(follower, milliseconds(30), {}, {"node1"}), Action::kNone,
       "node1 may still accept writes", quorum},
      {"no lease, nobody may write: the best standby takes over", nobody,
       with_contact(follower, milliseconds(30), {"node1"}), Action::kTakeOver, "most advanced",
       quorum},
  };
  check(cases);
  // The take-over names the fenced leader, whose lease the executor removes first.
  Decision takeover = decide(
      led_by_node1, lease_unchanged(with_contact(follower, milliseconds(30), {"node1"}), proof),
      quorum, kNow);
  EXPECT_EQ(takeover.remove_lease_of, "node1");
  EXPECT_EQ(proof, milliseconds(1100));
}

// The rest of a cycle's plan, which the executor used to work out for itself: what a failed
// renewal means, whether a promotion claims past the newest claim, and the WAL it loses.
TEST(Decide, ThePlanSaysWhatTheExecutorUsedToDecide) {
  HaConfig one_machine{.self = "node2"};
  HaConfig quorum{.self = "node2", .quorum_fencing = true};
  ClusterView led_by_me = view_with("node2", {standby("node1", 500)});
  Decision renew = decide(led_by_me, observed(PgState::kPrimary), one_machine, kNow);
  EXPECT_EQ(renew.action, Action::kRenewLease);
  EXPECT_EQ(renew.on_renewal_failure, RenewalFailure::kFenceIfPastDeadline);
  NodeObservation answered = observed(PgState::kPrimary);
  answered.majority_contact_age = milliseconds(30);
  renew = decide(led_by_me, answered, quorum, kNow);
  EXPECT_EQ(renew.action, Action::kRenewLease);
  EXPECT_EQ(renew.on_renewal_failure, RenewalFailure::kFenceIfTakenOver);
  Decision restarting = decide(led_by_me, observed(PgState::kStarting), one_machine, kNow);
  EXPECT_EQ(restarting.on_renewal_failure, RenewalFailure::kRetry) << "not a running primary";

  // A failover forced with --allow-data-loss to this node claims past the newest claim, and
  // the history will say how much of the last leader's WAL it never received.
  ClusterView forced = view_with(std::nullopt, {standby("node2", 400)});
  forced.switchover = SwitchoverRequest{.to = "node2", .force = true, .allow_data_loss = true};
  forced.last_leader_lsn = at(1000);
  NodeObservation standby_at_400 = observed(PgState::kStandby);
  standby_at_400.received_lsn = at(400);
  Decision takeover = decide(forced, standby_at_400, one_machine, kNow);
  ASSERT_EQ(takeover.action, Action::kTakeOver) << takeover.reason;
  EXPECT_TRUE(takeover.claim_past_newest);
  EXPECT_EQ(takeover.lost_bytes, at(1000).bytes_after(at(400)));
  ClusterView plain = view_with(std::nullopt, {standby("node2", 400)});
  takeover = decide(plain, standby_at_400, one_machine, kNow);
  ASSERT_EQ(takeover.action, Action::kTakeOver) << takeover.reason;
  EXPECT_FALSE(takeover.claim_past_newest);
  EXPECT_EQ(takeover.lost_bytes, std::nullopt) << "no position of a last leader known";
}

// A rejoin fails while the leader has not promoted yet (or restarts): such failures do not
// count towards a fresh copy, else the first failure after its promotion would be the copy.
TEST(Decide, ARejoinCountsTowardsACopyOnlyWhileTheLeaderRunsAsAPrimary) {
  HaConfig config{.self = "node2"};
  NodeObservation former_primary = observed(PgState::kStopped);
  former_primary.data_was_primary = true;
  NodeObservation stuck_standby = observed(PgState::kStandby, "node1");
  stuck_standby.not_streaming_for = milliseconds(5000);
  ClusterView running = view_with("node1", {});
  running.members["node1"] = {.name = "node1", .state = PgState::kPrimary};
  struct Case {
    const char* name;
    ClusterView view;
    NodeObservation node;
    bool uncounted;
  };
  for (const Case& c : std::vector<Case>{
           {"former primary, the leader a primary", running, former_primary, false},
           {"former primary, the leader still a standby", view_with("node1", {standby("node1", 5)}),
            former_primary, true},
           {"former primary, the leader's record missing", view_with("node1", {}), former_primary,
            true},
           {"stuck standby, the leader a primary", running, stuck_standby, false},
           {"stuck standby, the leader still a standby", view_with("node1", {standby("node1", 5)}),
            stuck_standby, true},
       }) {
    Decision decision = decide(c.view, c.node, config, kNow);
    ASSERT_EQ(decision.action, Action::kRejoin) << c.name << ": " << decision.reason;
    EXPECT_EQ(decision.uncounted_rejoin, c.uncounted) << c.name;
  }
}

// Its own claim of the next timeline: tried again while unmarked (an unfinished promotion), but
// once marked promoted the node has lost that history (reinitialized from a node that never
// promoted: fresh seed 273562385) and claims past it. A claim its server runs on is marked.
TEST(Decide, AnOwnClaimMarkedPromotedIsNotTriedAgain) {
  struct ClaimCase {
    const char* name;
    TimelineClaim claim;
    TimelineId timeline;   // the node's, as observed
    const char* claiming;  // what the reason says of the claim; nullptr: nothing
    bool mark;
  };
  const std::vector<ClaimCase> cases = {
      {"its own unfinished promotion", {.timeline = 2, .by = "node2"}, 1, nullptr, false},
      {"its own, used and lost since",
       {.timeline = 2, .by = "node2", .promoted = true},
       1,
       "timeline 2 was this node's, a history its data no longer holds: claiming the next",
       false},
      {"another's, whose claimant is a standby below it",
       {.timeline = 2, .by = "node3"},
       1,
       "timeline 2 was claimed by node3, which leads no more and is gone: claiming the next",
       false},
      {"its own, its server on it", {.timeline = 2, .by = "node2"}, 2, nullptr, true},
      {"its own, marked, its server on it",
       {.timeline = 2, .by = "node2", .promoted = true},
       2,
       nullptr,
       false},
  };
  for (const ClaimCase& each : cases) {
    ClusterView view =
        view_with(std::nullopt, {standby("node2", 400, each.timeline), standby("node3", 300)});
    view.timeline_claim = each.claim;
    NodeObservation node = observed(PgState::kStandby);
    node.timeline = each.timeline;
    node.received_lsn = at(400);
    Decision decision = decide(view, node, {.self = "node2"}, kNow);
    EXPECT_EQ(decision.action, Action::kTakeOver) << each.name << ": " << decision.reason;
    if (each.claiming == nullptr) {
      EXPECT_EQ(decision.reason.find("claim"), std::string::npos)
          << each.name << ": " << decision.reason;
    } else {
      EXPECT_NE(decision.reason.find(each.claiming), std::string::npos)
          << each.name << ": " << decision.reason;
      EXPECT_TRUE(decision.claim_past_newest) << each.name;
    }
    EXPECT_EQ(decision.mark_claim_promoted, each.mark) << each.name;
  }
}

// Which pending request the leader removes as it renews: one it carried out, one that named
// an old leader, a forced failover older than the newest timeline claim (seed 3100032888);
// not one it must still carry out, nor a forced one whose target was refused at its claim.
TEST(Decide, TheLeaderRemovesRequestsThatAreDoneWith) {
  HaConfig config{.self = "node2"};
  struct RequestCase {
    const char* name;
    SwitchoverRequest request;
    std::int64_t claim_revision;
    bool removed;
  };
  std::vector<RequestCase> cases = {
      {"a switchover to this node, carried out",
       {.from = "node1", .to = "node2", .revision = 10},
       5,
       true},
      {"a switchover to the best, carried out here", {.from = "node1", .revision = 10}, 5, true},
      {"a switchover away from this node, to carry out",
       {.from = "node2", .to = "node1", .revision = 10},
       5,
       false},
      {"a failover forced to another node, not yet tried",
       {.from = "node2", .to = "node1", .force = true, .revision = 10},
       5,
       false},
      {"a failover forced to another node, superseded by a claim since",
       {.from = "node2", .to = "node1", .force = true, .revision = 10},
       12,
       true},
  };
  for (const RequestCase& each : cases) {
    ClusterView view = view_with("node2", {standby("node1", 500)});
    view.switchover = each.request;
    view.timeline_claim =
        TimelineClaim{.timeline = 2, .by = "node2", .revision = each.claim_revision};
    Decision renew = decide(view, observed(PgState::kPrimary), config, kNow);
    EXPECT_EQ(renew.remove_request, each.removed) << each.name << ": " << renew.reason;
  }
  ClusterView none = view_with("node2", {standby("node1", 500)});
  EXPECT_FALSE(decide(none, observed(PgState::kPrimary), config, kNow).remove_request);
}

// The adopting mark goes with a renewal by the node it names, and only once its watchdog
// watches a postmaster its agent started (an adopted server not yet restarted is unfenceable).
TEST(Decide, TheAdoptedPrimarysAgentEndsTheAdoptionOnceItWatchesItsPostmaster) {
  HaConfig config{.self = "node2", .quorum_fencing = true};
  struct AdoptionCase {
    const char* name;
    std::optional<std::string> mark;
    bool watched;
    bool ends;
  };
  std::vector<AdoptionCase> cases = {
      {"marked, its postmaster watched", "node2", true, true},
      {"marked, a postmaster it did not start", "node2", false, false},
      {"the mark names another node", "node1", true, false},
      {"no mark", std::nullopt, true, false},
  };
  for (const AdoptionCase& each : cases) {
    ClusterView view = view_with("node2", {standby("node1", 500)});
    view.adopting = each.mark;
    NodeObservation node = observed(PgState::kPrimary);
    node.postmaster_watched = each.watched;
    Decision renew = decide(view, node, config, kNow);
    EXPECT_EQ(renew.action, Action::kRenewLease) << each.name << ": " << renew.reason;
    EXPECT_EQ(renew.end_adoption, each.ends) << each.name;
  }
  // A standby its agent runs (another leads): the adopted server is gone, the mark too.
  ClusterView led = view_with("node1", {standby("node2", 500)});
  led.adopting = "node2";
  EXPECT_TRUE(decide(led, observed(PgState::kStandby, "node1"), config, kNow).end_adoption);
  // Stopped as the agent sees it (a postmaster it did not start looks stopped): kept.
  EXPECT_FALSE(decide(led, observed(PgState::kStopped), config, kNow).end_adoption);
}

// The cluster's settings are applied once per revision, by every node with data, whatever the
// cycle's action.
TEST(Decide, TheClustersSettingsAreAppliedOncePerRevision) {
  HaConfig config{.self = "node2"};
  struct SettingsCase {
    const char* name;
    std::optional<std::int64_t> stored;  // nullopt: no settings key
    std::int64_t applied;
    PgState state;
    bool apply;
  };
  std::vector<SettingsCase> cases = {
      {"never applied, a standby", 7, 0, PgState::kStandby, true},
      {"an older revision applied", 7, 5, PgState::kStandby, true},
      {"this revision applied", 7, 7, PgState::kStandby, false},
      {"stopped: written for its start", 7, 0, PgState::kStopped, true},
      {"no data yet: its copy brings them", 7, 0, PgState::kNoData, false},
      {"no settings ever set", std::nullopt, 0, PgState::kStandby, false},
  };
  for (const SettingsCase& each : cases) {
    ClusterView view = view_with("node1", {standby("node2", 500)});
    if (each.stored) view.settings = ClusterSettings{{{"work_mem", "64MB"}}, *each.stored};
    NodeObservation node = observed(each.state, "node1");
    node.settings_applied = each.applied;
    EXPECT_EQ(decide(view, node, config, kNow).apply_settings, each.apply) << each.name;
  }
  // Never ahead of a step a failover waits on.
  ClusterView led_by_none = view_with(std::nullopt, {standby("node2", 500)});
  led_by_none.settings = ClusterSettings{{{"work_mem", "64MB"}}, 7};
  Decision take_over = decide(led_by_none, observed(PgState::kStandby, "node1"), config, kNow);
  ASSERT_EQ(take_over.action, Action::kTakeOver) << take_over.reason;
  EXPECT_FALSE(take_over.apply_settings);
  // Without the store, nothing is applied.
  NodeObservation node = observed(PgState::kStandby, "node1");
  EXPECT_FALSE(decide(std::nullopt, node, config, kNow).apply_settings);
}

// A restart requested through the API: never a primary's data without the lease, nor behind
// another node's claim.
TEST(Decide, ARestartIsRefusedToPrimaryDataWithoutTheLeaseOrBehindAClaim) {
  struct RestartCase {
    const char* name;
    std::optional<std::string> leader;
    PgState state;
    bool data_was_primary;
    TimelineId timeline;
    std::optional<TimelineClaim> claim;
    const char* refused;  // nullptr: restarted
    bool watchdog_gone = false;
  };
  std::vector<RestartCase> cases = {
      {"a standby, whoever leads", "node1", PgState::kStandby, false, 1, std::nullopt, nullptr},
      {"the leader's primary", "node2", PgState::kPrimary, true, 2,
       TimelineClaim{.timeline = 2, .by = "node2"}, nullptr},
      {"the leader, stopped, its own claim of the next timeline", "node2", PgState::kStopped, true,
       1, TimelineClaim{.timeline = 2, .by = "node2"}, nullptr},
      {"a primary's data without the lease", "node1", PgState::kStopped, true, 1, std::nullopt,
       "does not hold the lease"},
      {"the leader behind another's claim", "node2", PgState::kStopped, true, 1,
       TimelineClaim{.timeline = 2, .by = "node3"}, "behind timeline 2 claimed by node3"},
      {"the leader's running primary behind another's claim", "node2", PgState::kPrimary, true, 1,
       TimelineClaim{.timeline = 2, .by = "node3"}, "not restarted as a primary"},
      {"the leader, stopped, its watchdog not running", "node2", PgState::kStopped, true, 1,
       std::nullopt, "fencing watchdog is not running", true},
      {"the leader's primary, its watchdog not running", "node2", PgState::kPrimary, true, 1,
       std::nullopt, "not restarted as a primary until its agent has started the watchdog", true},
      {"a standby, its watchdog not running: restarted", "node1", PgState::kStandby, false, 1,
       std::nullopt, nullptr, true},
  };
  for (const RestartCase& each : cases) {
    ClusterView view = view_with(each.leader, {standby("node3", 500)});
    view.timeline_claim = each.claim;
    NodeObservation now = observed(each.state);
    now.data_was_primary = each.data_was_primary;
    now.timeline = each.timeline;
    if (each.watchdog_gone) now.watchdog_gone = {.why = "it was killed by signal 9"};
    auto refused = restart_refusal(view, now, "node2");
    expect_refusal(refused, each.refused, each.name);
  }
}

// A copy requested through the API comes only from a leader that runs as a primary (found by
// review: a lease holder still in recovery may release the lease without promoting, and the
// copied node's data may be the one with every acknowledged commit).
TEST(ReinitializeRefusal, OnlyAStandbyAndOnlyFromALeaderRunningAsPrimary) {
  struct Case {
    const char* name;
    std::optional<std::string> leader;
    PgState leader_state;
    const char* refused;  // nullptr: copied
  };
  const Case cases[] = {
      {"nobody leads", std::nullopt, PgState::kPrimary, "nobody leads"},
      {"this node leads", "node2", PgState::kPrimary, "only a standby is reinitialized"},
      {"the leader still in recovery", "node1", PgState::kStandby,
       "node1 holds the lease but does not run as a primary yet"},
      {"the leader stopped", "node1", PgState::kStopped, "does not run as a primary yet"},
      {"the leader runs as a primary", "node1", PgState::kPrimary, nullptr},
  };
  for (const Case& each : cases) {
    ClusterView view = view_with(
        each.leader,
        {MemberRecord{.name = "node1", .state = each.leader_state}, standby("node2", 500)});
    auto refused = reinitialize_refusal(view, "node2");
    expect_refusal(refused, each.refused, each.name);
  }
}

// `tandem promote` by hand follows the agents' rule in synchronous mode (found by review: a
// standby the record did not name, promoted by hand, then led through its own claim).
TEST(ManualPromotionRefusal, FollowsTheSyncRecord) {
  struct Case {
    const char* name;
    std::int64_t revision;  // 0: no record
    std::optional<std::vector<std::string>> standbys;
    std::string leader;
    std::optional<int> quorum;
    const char* refused;  // nullptr: promoted
  };
  const Case cases[] = {
      {"no record: the agents never ran in synchronous mode", 0, std::nullopt, "", std::nullopt,
       nullptr},
      {"the synchronous standby", 40, std::vector<std::string>{"node2"}, "node1", std::nullopt,
       nullptr},
      {"the last leader", 40, std::vector<std::string>{}, "node2", std::nullopt, nullptr},
      {"another is the synchronous standby", 40, std::vector<std::string>{"node3"}, "node1",
       std::nullopt,
       "node2 is neither the synchronous standby (node3) nor the last leader (node1)"},
      {"nobody synchronous, another the last leader", 40, std::vector<std::string>{}, "node1",
       std::nullopt, "no standby is synchronous and node2 is not the last leader (node1)"},
      {"quorum commit, the others not frozen", 40, std::vector<std::string>{"node2", "node3"},
       "node1", 1, "needs 1 other standbys of the quorum"},
  };
  for (const Case& each : cases) {
    ClusterView view = view_with(std::nullopt, {standby("node2", 500), standby("node3", 400)});
    view.sync_revision = each.revision;
    view.sync_standbys = each.standbys;
    view.sync_leader = each.leader;
    view.sync_quorum = each.quorum;
    auto refused = manual_promotion_refusal(view, "node2");
    expect_refusal(refused, each.refused, each.name);
  }
}

TEST(FailoverCandidates, RankedByReceivedWalThenName) {
  ClusterView view = view_with(std::nullopt, {standby("node3", 300), standby("node1", 500),
                                              standby("node2", 500), standby("node4", 900, 0)});
  view.members["node5"] = {.name = "node5", .state = PgState::kStopped};
  EXPECT_EQ(failover_candidates(view, {.self = "node1"}),
            (std::vector<std::string>{"node1", "node2", "node3"}));
}

// Synchronous mode with two synchronous standbys: either may take over, a more advanced
// asynchronous one may not.
TEST(FailoverCandidates, InSynchronousModeOnlyTheNamedStandbysAndTheLastLeader) {
  ClusterView view = view_with(
      std::nullopt, {standby("node2", 300), standby("node3", 500), standby("node4", 900)});
  view.sync_leader = "node1";
  view.sync_standbys = {"node2", "node3"};
  view.sync_revision = 7;
  EXPECT_EQ(failover_candidates(view, {.self = "node2", .synchronous_mode = true}),
            (std::vector<std::string>{"node3", "node2"}));
}

TEST(RoleTransitions, RefusesEdgesNotInTheTable) {
  EXPECT_EQ(find_transition(PgState::kPrimary, Action::kPromote), nullptr);
  EXPECT_EQ(find_transition(PgState::kStandby, Action::kFence), nullptr);
  EXPECT_EQ(find_transition(PgState::kNoData, Action::kStartPrimary), nullptr);
  const RoleTransition* promote = find_transition(PgState::kStandby, Action::kPromote);
  ASSERT_NE(promote, nullptr);
  EXPECT_EQ(promote->to, PgState::kPrimary);
}

TEST(RoleTransitions, TheDocsDiagramIsGeneratedFromTheTable) {
  std::ifstream doc(std::string(TANDEM_SOURCE_DIR) + "/docs/transitions.md");
  std::string text((std::istreambuf_iterator<char>(doc)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, transitions_diagram())
      << "docs/transitions.md is stale: regenerate it with `tandem transitions > "
         "docs/transitions.md`";
}

// A leader restarting in place in synchronous mode: with the standby its own record names, or
// with none once another leader's record is unnamed; the plan says which, the agent carries it.
TEST(Decide, RestartInPlaceKeepsItsOwnSynchronousStandbyAndUnnamesAnothersRecord) {
  struct Case {
    const char* name;
    bool synchronous;
    std::optional<Names> sync;  // the `sync` record's standbys: nullopt when absent
    std::string sync_leader;    // the leader it was written for
    Names keep;
    bool unname;
  };
  std::vector<Case> cases = {
      {"asynchronous", false, Names{"node3"}, "node2", {}, false},
      {"synchronous, no record", true, std::nullopt, "", {}, true},
      {"synchronous, another leader's record naming nobody", true, Names(), "node1", {}, true},
      {"synchronous, its record names nobody", true, Names(), "node2", {}, false},
      {"synchronous, its own record", true, Names{"node3"}, "node2", {"node3"}, false},
      {"synchronous, its own record naming two",
       true,
       Names{"node3", "node4"},
       "node2",
       {"node3", "node4"},
       false},
      {"synchronous, another leader's record", true, Names{"node3"}, "node1", {}, true},
  };
  NodeObservation former_primary = observed(PgState::kStopped);
  former_primary.data_was_primary = true;
  for (const Case& each : cases) {
    HaConfig config{.self = "node2", .synchronous_mode = each.synchronous};
    ClusterView view = view_with("node2", {standby("node3", 500)});
    view.sync_standbys = each.sync;
    view.sync_leader = each.sync_leader;
    Decision decision = decide(view, former_primary, config, kNow);
    EXPECT_EQ(decision.action, Action::kStartPrimary) << each.name << ": " << decision.reason;
    EXPECT_EQ(decision.keep_sync_standbys, each.keep) << each.name;
    EXPECT_EQ(decision.unname_sync, each.unname) << each.name;
  }
}

// Whether anybody but the leader could take over: a hung leader gives its lease up only then.
TEST(Decide, OthersMayLeadUnlessSynchronousWithoutASynchronousStandby) {
  struct Case {
    const char* name;
    bool synchronous;
    std::optional<Names> sync;  // the `sync` record: nullopt when absent
    bool expected;
    std::string sync_leader = "node1";  // the leader the record was written for
  };
  std::vector<Case> cases = {
      {"asynchronous, no sync record", false, std::nullopt, true},
      {"asynchronous, whatever the record says", false, Names(), true},
      {"synchronous, no sync record", true, std::nullopt, false, ""},
      {"synchronous, the record names nobody", true, Names(), false},
      {"synchronous, a standby named", true, Names{"node2"}, true},
      {"synchronous, two standbys named", true, Names{"node2", "node3"}, true},
      {"synchronous, written for another leader", true, Names(), true, "node3"},
      {"synchronous, written for no leader yet", true, Names(), false, ""},
  };
  for (const Case& each : cases) {
    HaConfig config{.self = "node1", .synchronous_mode = each.synchronous};
    ClusterView view = view_with("node1", {standby("node2", 500)});
    view.sync_standbys = each.sync;
    view.sync_leader = each.sync_leader;
    EXPECT_EQ(others_may_lead(view, config), each.expected) << each.name;
  }
}

// A process stopped while it holds the embedded store's write lock: resumed as soon as it is
// seen, killed if still so a third of renew_deadline later, whatever this node decides besides.
TEST(Decide, AProcessStoppedHoldingTheStoresWriteLockIsResumedThenKilled) {
  HaConfig config{.self = "node2"};  // renew_deadline 600 ms: the limit is 200 ms
  struct Case {
    const char* name;
    std::optional<std::chrono::milliseconds> stopped_for;  // nullopt: nobody holds it stopped
    PgState state;
    std::optional<Decision::UnblockStore> expected;
  };
  using std::chrono::milliseconds;
  std::vector<Case> cases = {
      {"nobody holds it stopped", std::nullopt, PgState::kPrimary, std::nullopt},
      {"seen stopped just now: resumed", milliseconds(0), PgState::kPrimary,
       Decision::UnblockStore{.pid = 4242, .kill = false}},
      {"still stopped, not for long: resumed again", milliseconds(199), PgState::kStandby,
       Decision::UnblockStore{.pid = 4242, .kill = false}},
      {"a stopped node too", milliseconds(100), PgState::kStopped,
       Decision::UnblockStore{.pid = 4242, .kill = false}},
      {"still stopped after the limit: killed", milliseconds(200), PgState::kStandby,
       Decision::UnblockStore{.pid = 4242, .kill = true}},
      {"by a primary too", milliseconds(900), PgState::kPrimary,
       Decision::UnblockStore{.pid = 4242, .kill = true}},
  };
  for (const Case& each : cases) {
    NodeObservation node = observed(each.state);
    if (each.stopped_for) {
      node.store_lock_held_stopped = {.pid = 4242, .stopped_for = *each.stopped_for};
    }
    ClusterView view = view_with("node1", {standby("node2", 500)});
    Decision decision = decide(view, node, config, kNow);
    ASSERT_EQ(decision.unblock_store.has_value(), each.expected.has_value()) << each.name;
    if (!each.expected) continue;
    EXPECT_EQ(decision.unblock_store->pid, 4242) << each.name;
    EXPECT_EQ(decision.unblock_store->kill, each.expected->kill) << each.name;
    EXPECT_EQ(decision.unblock_store->stopped_for, *each.stopped_for) << each.name;
  }
  // Without a view (the store unreadable) as well.
  NodeObservation node = observed(PgState::kStandby);
  node.store_lock_held_stopped = {.pid = 7, .stopped_for = std::chrono::milliseconds(250)};
  EXPECT_TRUE(decide(std::nullopt, node, config, kNow).unblock_store);
}

// The fencing watchdog's process gone (killed, or it exited): started again in the same cycle,
// whatever else is decided; nothing made writable until it runs; once a restart failed, a
// running primary stops writes and a leader whose PostgreSQL is down releases its lease.
TEST(Decide, ANodeWhoseWatchdogIsGoneStartsItAgainAndIsMadeWritableOnlyOnceItRuns) {
  auto gone = [](NodeObservation node, std::optional<milliseconds> gone_for) {
    if (gone_for) node.watchdog_gone = {.why = "it was killed by signal 9", .gone_for = *gone_for};
    return node;
  };
  NodeObservation primary = observed(PgState::kPrimary);
  NodeObservation down = observed(PgState::kStopped);
  down.data_was_primary = true;
  NodeObservation following = observed(PgState::kStandby, "node1");
  ClusterView led_by_me = view_with("node2", {standby("node1", 500)});
  ClusterView free = view_with(std::nullopt, {standby("node2", 500), standby("node3", 400)});
  ClusterView led_by_node1 = view_with("node1", {standby("node2", 500)});
  const milliseconds now{0};
  const milliseconds failed{150};
  std::vector<Case> cases = {
      {"a primary, running: renews", led_by_me, gone(primary, std::nullopt), Action::kRenewLease,
       ""},
      {"a primary whose watchdog was just found gone: renews (restarted this cycle)", led_by_me,
       gone(primary, now), Action::kRenewLease, ""},
      {"a primary whose watchdog could not be restarted: stops writes", led_by_me,
       gone(primary, failed), Action::kFence, "could not be restarted: stop writes"},
      {"the best standby, the lease free, running: takes over", free,
       gone(observed(PgState::kStandby), std::nullopt), Action::kTakeOver, "most advanced"},
      {"the best standby, its watchdog just found gone: waits a cycle", free,
       gone(observed(PgState::kStandby), now), Action::kNone, "take-over waits"},
      {"the best standby, its watchdog not restarted: still waits", free,
       gone(observed(PgState::kStandby), failed), Action::kNone, "started again first"},
      {"the leader, PostgreSQL down, its watchdog just found gone: waits a cycle",
       view_with("node2", {}), gone(down, now), Action::kNone, "start-primary waits"},
      {"the leader, PostgreSQL down, its watchdog not restarted: releases the lease",
       view_with("node2", {}), gone(down, failed), Action::kReleaseLease,
       "release it to a standby whose watchdog runs"},
      {"the leader still in recovery, its watchdog just found gone: its promotion waits",
       view_with("node2", {}), gone(observed(PgState::kStandby), now), Action::kNone,
       "promote waits"},
      {"the leader still in recovery, its watchdog not restarted: releases the lease",
       view_with("node2", {}), gone(observed(PgState::kStandby), failed), Action::kReleaseLease,
       "rather than promote"},
      {"a standby that follows: nothing made writable, nothing changes", led_by_node1,
       gone(following, failed), Action::kNone, "a standby of node1"},
      {"the better candidate's record says its watchdog does not run: this one takes over",
       [] {
         MemberRecord better = standby("node3", 900);
         better.unwatched = true;
         return view_with(std::nullopt, {standby("node2", 500), better});
       }(),
       gone(observed(PgState::kStandby), std::nullopt), Action::kTakeOver, "most advanced"},
  };
  check(cases);
  for (const Case& each : cases) {
    EXPECT_EQ(decide(each.view, each.node, each.config, kNow).restart_watchdog,
              each.node.watchdog_gone.has_value())
        << each.name;
  }
  // Without a view (the store unreadable) as well.
  EXPECT_TRUE(
      decide(std::nullopt, gone(primary, now), HaConfig{.self = "node2"}, kNow).restart_watchdog);
}

// Quorum commit (ha.synchronous_quorum), the record "any 1 of node2 and node3" at revision 40:
// a standby of it freezes when nobody leads, promises its freeze once its receiver has settled,
// takes over only with the other's promise for this revision and at least its WAL, stays frozen
// until the lease holder writes the record anew, and starts frozen meanwhile.
TEST(Decide, QuorumCommitFreezesBeforeAnElectionAndThawsOnlyOnANewerRecord) {
  const HaConfig config{.self = "node2", .synchronous_mode = true, .synchronous_quorum = true};
  auto quorum_view = [](std::optional<std::string> leader, std::vector<MemberRecord> members,
                        std::string sync_leader = "node1") {
    ClusterView view = view_with(std::move(leader), std::move(members));
    view.sync_standbys = Names{"node2", "node3"};
    view.sync_quorum = 1;
    view.sync_leader = std::move(sync_leader);
    view.sync_revision = 40;
    return view;
  };
  auto promised = [](MemberRecord member, std::int64_t revision, std::uint64_t at) {
    member.frozen_for = revision;
    member.frozen_at = Lsn(at);
    return member;
  };
  NodeObservation streaming = observed(PgState::kStandby, "node1");
  streaming.received_lsn = at(500);
  NodeObservation frozen = observed(PgState::kStandby, "");
  frozen.received_lsn = at(500);
  frozen.receiver_stopped_for = milliseconds(400);  // settled (300 ms)
  frozen.receive_position_known = true;
  NodeObservation settling = frozen;
  settling.receiver_stopped_for = milliseconds(100);
  // Restarted since its receiver stopped: received_lsn is replay's position.
  NodeObservation restarted = frozen;
  restarted.receive_position_known = false;
  restarted.received_lsn = at(400);
  NodeObservation down = observed(PgState::kStopped);
  struct QuorumCase {
    const char* name;
    ClusterView view;
    NodeObservation node;
    Action action;
    const char* reason_has;
    std::string source;                      // kFollow, kStartStandby
    std::optional<std::int64_t> frozen_for;  // the promise published
    bool name_in_sync_first = false;
  };
  std::vector<QuorumCase> cases = {
      {"nobody leads, pointed at the old primary: freeze first",
       quorum_view(std::nullopt, {standby("node2", 500), standby("node3", 500)}), streaming,
       Action::kFollow, "stop the WAL receiver (freeze)", "", std::nullopt},
      {"frozen, not yet settled: no promise, no takeover without the other's",
       quorum_view(std::nullopt, {standby("node2", 500), standby("node3", 500)}), settling,
       Action::kNone, "node2 needs 1 other standbys of the quorum", "", std::nullopt},
      {"frozen and settled: promised for revision 40",
       quorum_view(std::nullopt, {standby("node2", 500), standby("node3", 500)}), frozen,
       Action::kNone, "frozen for sync revision 40, and 0 are", "", 40},
      {"the other promised for revision 40 at the same WAL: take over, the record first",
       quorum_view(std::nullopt, {standby("node2", 500), promised(standby("node3", 500), 40, 500)}),
       frozen, Action::kTakeOver, "most advanced eligible standby", "", 40, true},
      {"the other promised for an older revision: it may have streamed since",
       quorum_view(std::nullopt, {standby("node2", 500), promised(standby("node3", 500), 39, 500)}),
       frozen, Action::kNone, "and 0 are", "", 40},
      {"the other froze further on: this node may lack a commit",
       quorum_view(std::nullopt, {standby("node2", 500), promised(standby("node3", 600), 40, 600)}),
       frozen, Action::kNone, "node2 (0/1F4) is behind node3, frozen at 0/258", "", 40},
      {"a new leader, the record still the one it promised for: stays frozen",
       quorum_view("node3", {promised(standby("node2", 500), 40, 500)}, "node3"), frozen,
       Action::kNone, "frozen for sync revision 40 (quorum commit)", "node3", 40},
      {"the lease holder wrote the record anew: follow it",
       [&] {
         ClusterView view =
             quorum_view("node3", {promised(standby("node2", 500), 40, 500)}, "node3");
         view.sync_revision = 41;
         return view;
       }(),
       frozen, Action::kFollow, "but node3 leads: follow it", "node3", std::nullopt},
      {"a newer record another node wrote: still frozen (the lease holder's own comes next)",
       [&] {
         ClusterView view =
             quorum_view("node3", {promised(standby("node2", 500), 40, 500)}, "node4");
         view.sync_revision = 41;
         return view;
       }(),
       frozen, Action::kNone, "frozen for sync revision 40", "node3", 41},
      {"PostgreSQL down while frozen: started pointed at nobody, the promise kept",
       quorum_view("node3", {promised(standby("node2", 500), 40, 500)}, "node3"), down,
       Action::kStartStandby, "start it as a standby of nobody, frozen", "", 40},
      {"restarted, no promise yet: none made at replay's position",
       quorum_view(std::nullopt, {standby("node2", 400), standby("node3", 500)}), restarted,
       Action::kNone, "and 0 are", "", std::nullopt},
      {"restarted while promised: the promise kept, its position too",
       quorum_view(std::nullopt, {promised(standby("node2", 400), 40, 500), standby("node3", 500)}),
       restarted, Action::kNone, "and 0 are", "", 40},
      {"no promise made: a standby pointed at nobody follows the leader",
       quorum_view("node3", {standby("node2", 500)}, "node3"), settling, Action::kFollow,
       "but node3 leads: follow it", "node3", std::nullopt},
  };
  for (const QuorumCase& c : cases) {
    SCOPED_TRACE(c.name);
    Decision decision = decide(c.view, c.node, config, kNow);
    EXPECT_EQ(decision.action, c.action) << action_name(decision.action) << ": " << decision.reason;
    EXPECT_NE(decision.reason.find(c.reason_has), std::string::npos) << decision.reason;
    if (c.action == Action::kFollow || c.action == Action::kStartStandby) {
      EXPECT_EQ(decision.source, c.source);
    }
    EXPECT_EQ(decision.frozen_for, c.frozen_for);
    EXPECT_EQ(decision.name_in_sync_first, c.name_in_sync_first);
  }
  // A promise renewed at a lower position (replay behind) keeps the one made before.
  ClusterView held =
      quorum_view(std::nullopt, {promised(standby("node2", 500), 40, 600), standby("node3", 500)});
  EXPECT_EQ(decide(held, frozen, config, kNow).frozen_at, Lsn(600));
  ClusterView kept =
      quorum_view(std::nullopt, {promised(standby("node2", 400), 40, 500), standby("node3", 500)});
  EXPECT_EQ(decide(kept, restarted, config, kNow).frozen_at, Lsn(500));
  // Under the priority form (no quorum in the record), nobody freezes.
  ClusterView priority = quorum_view(std::nullopt, {standby("node2", 500), standby("node3", 500)});
  priority.sync_quorum.reset();
  EXPECT_NE(decide(priority, streaming, config, kNow).action, Action::kFollow);
  // A primary that retakes its lapsed lease writes the record anew first.
  NodeObservation primary = observed(PgState::kPrimary);
  ClusterView lapsed = quorum_view(std::nullopt, {}, "node2");
  Decision retake = decide(lapsed, primary, config, kNow);
  EXPECT_EQ(retake.action, Action::kAcquireLease) << retake.reason;
  EXPECT_TRUE(retake.unname_sync);
}

}  // namespace
}  // namespace tandem
