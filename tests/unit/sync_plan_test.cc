// The leader's synchronous standby, as rules: which standby PostgreSQL waits for, when the store
// names it, and when a stalled one is replaced.
#include "core/sync_plan.h"

#include <gtest/gtest.h>

#include <vector>

namespace tandem {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const Clock::time_point kStart{std::chrono::seconds(100)};

struct Case {
  const char* what;
  SyncObservation seen;
  SyncMemory memory;
  milliseconds elapsed;  // since kStart, when the plan is made
  bool unname;
  std::optional<std::string> configure;
  std::optional<std::string> name;
  const char* why;  // the log line starts with it
};

// Each standby seen behind at its position since kStart, per `memory`.
SyncMemory seen_at(std::vector<std::pair<std::string, std::uint64_t>> flushes,
                   std::optional<std::uint64_t> pending = std::nullopt) {
  SyncMemory memory;
  for (auto& [name, flush] : flushes) {
    memory.progress[name] = {Lsn(flush), kStart};
    if (pending) memory.pending_since[name] = Lsn(*pending);
  }
  return memory;
}
// Each standby seen caught up at its position.
SyncMemory caught_up_at(std::vector<std::pair<std::string, std::uint64_t>> flushes) {
  SyncMemory memory;
  for (auto& [name, flush] : flushes) memory.progress[name] = {Lsn(flush), std::nullopt};
  return memory;
}

void check(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    SyncStep step = plan_sync(c.seen, c.memory, kStart + c.elapsed);
    // One standby at most, as before ha.synchronous_node_count: "" for none.
    auto names = [](const std::optional<std::string>& one) -> std::optional<SyncNames> {
      if (!one) return std::nullopt;
      return one->empty() ? SyncNames() : SyncNames{*one};
    };
    EXPECT_EQ(step.narrow, c.unname ? std::optional<SyncNames>(SyncNames()) : std::nullopt);
    EXPECT_EQ(step.configure, names(c.configure));
    EXPECT_EQ(step.name, names(c.name));
    EXPECT_TRUE(step.why.starts_with(c.why)) << step.why;
    EXPECT_EQ(step.why.empty(), std::string(c.why).empty()) << step.why;
  }
}

TEST(SyncPlan, NamesOnlyAStandbyThatHasEveryCommitAndReplacesAStalledOne) {
  std::vector<Case> cases = {
      {"named and streaming: nothing to do",
       {{"node2"}, {"node2"}, Lsn(100), {{"node2", Lsn(100), true}}},
       {},
       milliseconds(0),
       false,
       {},
       {},
       ""},
      {"another leader's record: rewritten as this one's, then the standby named",
       {{"node2"}, {}, Lsn(100), {{"node2", Lsn(100), true}}, true},
       {},
       milliseconds(0),
       true,
       {},
       "node2",
       "node2 is the synchronous standby"},
      {"another leader's record, nothing streams: rewritten as this one's, naming nobody",
       {{}, {}, Lsn(100), {}, true},
       {},
       milliseconds(0),
       true,
       {},
       {},
       ""},
      {"none configured: the most advanced streaming one is made synchronous",
       {{}, {}, Lsn(100), {{"node2", Lsn(80), false}, {"node3", Lsn(90), false}}},
       {},
       milliseconds(0),
       false,
       "node3",
       {},
       "made node3 synchronous"},
      {"configured but not yet at the position it was made so: not named yet",
       {{"node3"}, {}, Lsn(120), {{"node3", Lsn(110), true}}},
       seen_at({{"node3", 100}}, 115),
       milliseconds(100),
       false,
       {},
       {},
       ""},
      {"configured and caught up: named",
       {{"node3"}, {}, Lsn(120), {{"node3", Lsn(115), true}}},
       seen_at({{"node3", 110}}, 115),
       milliseconds(100),
       false,
       {},
       "node3",
       "node3 is the synchronous standby"},
      {"configured but PostgreSQL does not wait for it yet: not named",
       {{"node3"}, {}, Lsn(120), {{"node3", Lsn(120), false}}},
       seen_at({{"node3", 110}}, 115),
       milliseconds(100),
       false,
       {},
       {},
       ""},
      {"named but another configured: unnamed first",
       {{"node3"}, {"node2"}, Lsn(120), {{"node3", Lsn(100), true}}},
       {},
       milliseconds(0),
       true,
       {},
       {},
       ""},
      {"the configured one gone: unnamed, the next made synchronous",
       {{"node2"}, {"node2"}, Lsn(120), {{"node3", Lsn(100), false}}},
       {},
       milliseconds(0),
       true,
       "node3",
       {},
       "made node3 synchronous"},
      {"nobody streams: writes go on without one",
       {{"node2"}, {"node2"}, Lsn(120), {}},
       {},
       milliseconds(0),
       true,
       "",
       {},
       "no standby streams"},
      {"the configured one behind and still for less than the limit: kept",
       {{"node2"}, {"node2"}, Lsn(120), {{"node2", Lsn(50), true}, {"node3", Lsn(120), false}}},
       seen_at({{"node2", 50}, {"node3", 110}}),
       kSyncStallLimit - milliseconds(1),
       false,
       {},
       {},
       ""},
      {"the configured one behind and still for the limit: replaced",
       {{"node2"}, {"node2"}, Lsn(120), {{"node2", Lsn(50), true}, {"node3", Lsn(120), false}}},
       seen_at({{"node2", 50}, {"node3", 110}}),
       kSyncStallLimit,
       true,
       "node3",
       {},
       "node2 has flushed nothing for 2000 ms while behind: made node3 synchronous"},
      {"the configured one still but caught up (an idle cluster): kept",
       {{"node2"}, {"node2"}, Lsn(120), {{"node2", Lsn(120), true}}},
       caught_up_at({{"node2", 120}}),
       milliseconds(60000),
       false,
       {},
       {},
       ""},
      {"caught up through an idle minute, then one commit ahead: its stall counts from now",
       {{"node2"}, {"node2"}, Lsn(121), {{"node2", Lsn(120), true}, {"node3", Lsn(121), false}}},
       caught_up_at({{"node2", 120}, {"node3", 120}}),
       milliseconds(60000),
       false,
       {},
       {},
       ""},
      {"the configured one moved: its stall counts from now",
       {{"node2"}, {"node2"}, Lsn(120), {{"node2", Lsn(60), true}, {"node3", Lsn(120), false}}},
       seen_at({{"node2", 50}}),
       milliseconds(60000),
       false,
       {},
       {},
       ""},
      {"a stalled one alone: none configured, and it is not chosen again",
       {{"node2"}, {"node2"}, Lsn(120), {{"node2", Lsn(50), true}}},
       seen_at({{"node2", 50}}),
       kSyncStallLimit,
       true,
       "",
       {},
       "node2 has flushed nothing for 2000 ms while behind: no standby streams"},
      {"the configured one caught up but commits wait for it, for less than the limit: kept",
       {{"node2"},
        {"node2"},
        Lsn(120),
        {{"node2", Lsn(120), true}, {"node3", Lsn(120), false}},
        false,
        true},
       seen_at({{"node2", 120}, {"node3", 120}}),
       kSyncStallLimit - milliseconds(1),
       false,
       {},
       {},
       ""},
      {"the configured one caught up but commits wait for it for the limit (its replies lost): "
       "replaced",
       {{"node2"},
        {"node2"},
        Lsn(120),
        {{"node2", Lsn(120), true}, {"node3", Lsn(120), false}},
        false,
        true},
       seen_at({{"node2", 120}}),
       kSyncStallLimit,
       true,
       "node3",
       {},
       "node2 has acknowledged nothing for 2000 ms while commits wait for it: made node3 "
       "synchronous"},
      {"commits wait, but the configured one moved: its stall counts from now",
       {{"node2"}, {"node2"}, Lsn(120), {{"node2", Lsn(120), true}}, false, true},
       seen_at({{"node2", 110}}),
       milliseconds(60000),
       false,
       {},
       {},
       ""},
      {"a caught-up standby commits do not wait for is no stalled one",
       {{"node2"},
        {"node2"},
        Lsn(120),
        {{"node2", Lsn(120), true}, {"node3", Lsn(120), false}},
        false,
        true},
       caught_up_at({{"node3", 120}}),
       milliseconds(60000),
       false,
       {},
       {},
       ""},
      {"stalled while commits waited, replaced, caught up at the same position: no candidate",
       {{"node3"}, {}, Lsn(120), {{"node2", Lsn(120), false}, {"node3", Lsn(100), true}}},
       seen_at({{"node2", 120}, {"node3", 100}}),
       kSyncStallLimit,
       false,
       "",
       {},
       "node3 has flushed nothing for 2000 ms while behind: no standby streams"},
      {"a stalled one is no candidate",
       {{}, {}, Lsn(120), {{"node2", Lsn(50), false}}},
       seen_at({{"node2", 50}}),
       kSyncStallLimit,
       false,
       {},
       {},
       ""},
  };
  check(cases);
}

// ha.synchronous_mode_strict: with nobody to name, PostgreSQL waits for any standby ("*"), never
// for none; a standby that streams is named as in the plain mode.
TEST(SyncPlan, StrictWaitsForAnyStandbyRatherThanNone) {
  auto strict = [](SyncObservation seen) {
    seen.strict = true;
    return seen;
  };
  std::vector<Case> cases = {
      {"the named standby gone: unnamed, then any standby waited for",
       strict({{"node2"}, {"node2"}, Lsn(100), {}}),
       {},
       milliseconds(0),
       true,
       "*",
       {},
       "no standby streams: commits wait until one does (synchronous_mode_strict)"},
      {"any standby waited for already, none streams: nothing to do",
       strict({{"*"}, {}, Lsn(100), {}}),
       {},
       milliseconds(0),
       false,
       {},
       {},
       ""},
      {"none configured yet (a new cluster): any standby waited for",
       strict({{}, {}, Lsn(100), {}}),
       {},
       milliseconds(0),
       false,
       "*",
       {},
       "no standby streams: commits wait"},
      {"a standby streams while any is waited for: made the synchronous one by name",
       strict({{"*"}, {}, Lsn(100), {{"node3", Lsn(100), true}}}),
       {},
       milliseconds(0),
       false,
       "node3",
       {},
       "made node3 synchronous"},
      {"a stalled synchronous standby, no other: any standby waited for",
       strict({{"node3"}, {"node3"}, Lsn(120), {{"node3", Lsn(100), true}}}),
       seen_at({{"node3", 100}}),
       kSyncStallLimit,
       true,
       "*",
       {},
       "node3 has flushed nothing for 2000 ms while behind: no standby streams: commits wait"},
  };
  check(cases);
}

// ha.synchronous_node_count 2: PostgreSQL waits for two standbys, each named in the record once
// it has every acknowledged commit; one leaves the record before PostgreSQL stops waiting for
// it, and the one that stays is never unnamed meanwhile.
TEST(SyncPlan, TwoStandbysEachNamedOnceCaughtUpAndDroppedFromTheRecordFirst) {
  struct TwoCase {
    const char* what;
    SyncObservation seen;
    SyncMemory memory;
    milliseconds elapsed;
    std::optional<SyncNames> narrow;
    std::optional<SyncNames> configure;
    std::optional<SyncNames> name;
    const char* why;
  };
  auto two = [](SyncObservation seen) {
    seen.count = 2;
    return seen;
  };
  const SyncNames both{"node3", "node2"};
  std::vector<TwoCase> cases = {
      {"none configured: the two most advanced made synchronous",
       two({{}, {}, Lsn(100), {{"node2", Lsn(80)}, {"node3", Lsn(90)}, {"node4", Lsn(70)}}}),
       {},
       milliseconds(0),
       {},
       both,
       {},
       "made node3 and node2 synchronous; they are named in the store once each has"},
      {"one streams: it alone, commits wait for it",
       two({{}, {}, Lsn(100), {{"node3", Lsn(90)}}}),
       {},
       milliseconds(0),
       {},
       SyncNames{"node3"},
       {},
       "made node3 synchronous"},
      {"a second one streams: added to PostgreSQL's, the first stays named",
       two({{"node3"}, {"node3"}, Lsn(100), {{"node3", Lsn(100), true}, {"node2", Lsn(90)}}}),
       {},
       milliseconds(0),
       {},
       both,
       {},
       "made node2 synchronous; it is named"},
      {"both configured and past where they were made so: both named",
       two({both, {}, Lsn(120), {{"node2", Lsn(110), true}, {"node3", Lsn(120), true}}}),
       seen_at({{"node2", 100}, {"node3", 100}}, 105),
       milliseconds(100),
       {},
       {},
       both,
       "node3 and node2 are the synchronous standbys: only they may take over"},
      {"one past it, the other not: the first named alone",
       two({both, {}, Lsn(120), {{"node2", Lsn(100), true}, {"node3", Lsn(120), true}}}),
       seen_at({{"node2", 100}, {"node3", 100}}, 105),
       milliseconds(100),
       {},
       {},
       SyncNames{"node3"},
       "node3 is the synchronous standby"},
      {"one named, the other not yet past it: nothing",
       two({both, {"node3"}, Lsn(120), {{"node2", Lsn(100), true}, {"node3", Lsn(120), true}}}),
       seen_at({{"node2", 100}}, 105),
       milliseconds(100),
       {},
       {},
       {},
       ""},
      {"one gone, another streams: it leaves the record, then the other takes its place",
       two({both, both, Lsn(120), {{"node3", Lsn(120), true}, {"node4", Lsn(110)}}}),
       {},
       milliseconds(0),
       SyncNames{"node3"},
       SyncNames{"node3", "node4"},
       {},
       "made node4 synchronous"},
      {"one gone, no other: commits wait for the one left",
       two({both, both, Lsn(120), {{"node3", Lsn(120), true}}}),
       {},
       milliseconds(0),
       SyncNames{"node3"},
       SyncNames{"node3"},
       {},
       "commits wait for node3 only"},
      {"one stalled: replaced, the other stays named",
       two({both,
            both,
            Lsn(120),
            {{"node2", Lsn(50), true}, {"node3", Lsn(120), true}, {"node4", Lsn(120)}}}),
       seen_at({{"node2", 50}}),
       kSyncStallLimit,
       SyncNames{"node3"},
       SyncNames{"node3", "node4"},
       {},
       "node2 has flushed nothing for 2000 ms while behind: made node4 synchronous"},
      {"commits wait while the first is behind: it is the stalled one, not the caught-up other, "
       "which leaves the record too (it moves up the list)",
       two({both,
            both,
            Lsn(120),
            {{"node2", Lsn(120), true}, {"node3", Lsn(100), true}, {"node4", Lsn(120)}},
            false,
            true}),
       [] {  // node2 caught up, node3 behind at 100 since kStart
         SyncMemory memory = seen_at({{"node3", 100}});
         memory.progress["node2"] = {Lsn(120), std::nullopt};
         return memory;
       }(),
       kSyncStallLimit,
       SyncNames{},
       SyncNames{"node2", "node4"},
       {},
       "node3 has flushed nothing for 2000 ms while behind: made node4 synchronous"},
      {"commits wait while both are caught up: both suspect",
       two({both,
            both,
            Lsn(120),
            {{"node2", Lsn(120), true}, {"node3", Lsn(120), true}, {"node4", Lsn(120)}},
            false,
            true}),
       seen_at({{"node2", 120}, {"node3", 120}}),
       kSyncStallLimit,
       SyncNames{},
       SyncNames{"node4"},
       {},
       "node3 has acknowledged nothing for 2000 ms while commits wait for it: node2 has"},
      {"named, but PostgreSQL says it does not wait for it: it leaves the record",
       two({both, both, Lsn(120), {{"node2", Lsn(120), false}, {"node3", Lsn(120), true}}}),
       {},
       milliseconds(0),
       SyncNames{"node3"},
       {},
       {},
       ""},
      {"the count lowered to one: the second leaves the record, then PostgreSQL's",
       {both, both, Lsn(120), {{"node2", Lsn(120), true}, {"node3", Lsn(120), true}}},
       {},
       milliseconds(0),
       SyncNames{"node3"},
       SyncNames{"node3"},
       {},
       "commits wait for node3 only"},
      {"another leader's record naming two: rewritten as this one's first",
       two({both, {}, Lsn(120), {{"node2", Lsn(120), true}, {"node3", Lsn(120), true}}, true}),
       {},
       milliseconds(0),
       SyncNames{},
       {},
       both,
       "node3 and node2 are the synchronous standbys"},
  };
  for (const TwoCase& c : cases) {
    SCOPED_TRACE(c.what);
    SyncStep step = plan_sync(c.seen, c.memory, kStart + c.elapsed);
    EXPECT_EQ(step.narrow, c.narrow);
    EXPECT_EQ(step.configure, c.configure);
    EXPECT_EQ(step.name, c.name);
    EXPECT_TRUE(step.why.starts_with(c.why)) << step.why;
    EXPECT_EQ(step.why.empty(), std::string(c.why).empty()) << step.why;
  }
}

TEST(SyncPlan, RemembersWhereEachStandbyWasAndSinceWhen) {
  SyncObservation seen{{"node2"}, {}, Lsn(120), {{"node2", Lsn(50), true}}};
  SyncStep first = plan_sync(seen, {}, kStart);
  ASSERT_TRUE(first.memory.progress.contains("node2"));
  EXPECT_EQ(first.memory.progress["node2"].behind_since, kStart);
  EXPECT_EQ(first.memory.pending_since, (std::map<std::string, Lsn>{{"node2", Lsn(120)}}));
  SyncStep second = plan_sync(seen, first.memory, kStart + milliseconds(500));
  EXPECT_EQ(second.memory.progress["node2"].behind_since, kStart);  // it has not moved
  seen.current = Lsn(50);                                           // caught up: no longer behind
  SyncStep idle = plan_sync(seen, second.memory, kStart + milliseconds(550));
  EXPECT_EQ(idle.memory.progress["node2"].behind_since, std::nullopt);
  seen.streaming = {};
  SyncStep gone = plan_sync(seen, idle.memory, kStart + milliseconds(600));
  EXPECT_FALSE(gone.memory.progress.contains("node2"));
}

// Whether "every acknowledged commit on k of S" implies "on k2 of S2".
TEST(SyncPlan, QuorumImplication) {
  struct Row {
    int k;
    SyncNames s;
    int k2;
    SyncNames s2;
    bool implies;
  };
  std::vector<Row> rows = {
      {1, {"a", "b"}, 1, {"a", "b"}, true},
      {1, {"a", "b"}, 1, {"a", "b", "c"}, true},   // a superset, the same k: weaker
      {1, {"a", "b"}, 1, {"a"}, false},            // b alone may hold a commit
      {2, {"a", "b"}, 1, {"a"}, true},             // both hold each: a does
      {2, {"a", "b", "c"}, 1, {"a", "b"}, true},   // two of three: one of any two
      {2, {"a", "b", "c"}, 2, {"a", "b"}, false},  // a and c may hold it, not b
      {1, {"a"}, 2, {"a", "b"}, false},            // raising k needs the flushes
      {0, {}, 1, {"a"}, false},
      {3, {"a", "b"}, 0, {}, true},  // nothing is implied by anything
  };
  for (const Row& row : rows) {
    EXPECT_EQ(quorum_implies(row.k, row.s, row.k2, row.s2), row.implies)
        << row.k << " of " << join_names(row.s) << " => " << row.k2 << " of " << join_names(row.s2);
  }
}

// ha.synchronous_quorum: PostgreSQL waits for any `count` of every usable streaming standby;
// the record says so once that many flushed past where the WAL ended when the configuration
// was in effect, narrows before a change every mix of old and new would not imply, and is
// written anew when a member froze for it.
TEST(SyncPlan, QuorumConfiguresEveryStandbyAndNamesThemOnceEnoughCaughtUp) {
  struct QuorumCase {
    const char* what;
    SyncObservation seen;
    SyncMemory memory;
    std::optional<std::pair<int, SyncNames>> narrow;
    std::optional<std::pair<int, SyncNames>> configure;
    std::optional<std::pair<int, SyncNames>> name;
    std::optional<Lsn> quorum_since;
    const char* why;
  };
  auto quorum = [](SyncObservation seen, int any, std::optional<int> published) {
    seen.quorum = true;
    seen.configured_any = any;
    seen.published_quorum = published;
    return seen;
  };
  const SyncNames both{"node2", "node3"};
  using Q = std::pair<int, SyncNames>;
  std::vector<QuorumCase> cases = {
      {"none configured: every streaming standby, any one of them",
       quorum({{}, {}, Lsn(100), {{"node3", Lsn(90)}, {"node2", Lsn(80)}}}, 0, std::nullopt),
       {},
       {},
       Q{1, both},
       {},
       std::nullopt,
       "commits wait for any 1 of node2 and node3"},
      {"configured, not yet both in the quorum: nothing named, no starting point",
       quorum({both, {}, Lsn(100), {{"node2", Lsn(100), true}, {"node3", Lsn(100), false}}}, 1,
              std::nullopt),
       {},
       {},
       {},
       {},
       std::nullopt,
       ""},
      {"both in the quorum: where the WAL ends is the starting point",
       quorum({both, {}, Lsn(100), {{"node2", Lsn(90), true}, {"node3", Lsn(90), true}}}, 1,
              std::nullopt),
       {},
       {},
       {},
       {},
       Lsn(100),
       ""},
      {"a record of node3 alone, node2 streams too: configured with both, the record narrowed "
       "to any one of both at once, and the log says so (CI)",
       quorum({{"node3"},
               {"node3"},
               Lsn(100),
               {{"node2", Lsn(100), false}, {"node3", Lsn(100), true}}},
              1, 1),
       {},
       Q{1, {"node3", "node2"}},
       Q{1, both},
       {},
       std::nullopt,
       "commits wait for any 1 of node2 and node3; every acknowledged commit is on any 1 of "
       "node3 and node2"},
      {"a record of node2 alone, both configured: narrowed to any one of both, and logged",
       quorum({both, {"node2"}, Lsn(100), {{"node2", Lsn(100), true}, {"node3", Lsn(100), true}}},
              1, 1),
       {},
       Q{1, both},
       {},
       {},
       std::nullopt,
       "every acknowledged commit is on any 1 of node2 and node3: a takeover needs 2"},
      {"one flushed past it: the record says any one of both",
       quorum({both, {}, Lsn(120), {{"node2", Lsn(100), true}, {"node3", Lsn(90), true}}}, 1,
              std::nullopt),
       {.quorum_since = Lsn(100)},
       {},
       {},
       Q{1, both},
       std::nullopt,
       "every acknowledged commit is on any 1 of node2 and node3: a takeover needs 2"},
      {"named and unchanged: nothing to do",
       quorum({both, both, Lsn(120), {{"node2", Lsn(120), true}, {"node3", Lsn(120), true}}}, 1, 1),
       {},
       {},
       {},
       {},
       std::nullopt,
       ""},
      {"node3 gone: PostgreSQL waits for node2 alone; the record, which that implies, stays",
       quorum({both, both, Lsn(120), {{"node2", Lsn(120), true}}}, 1, 1),
       {},
       {},
       Q{1, {"node2"}},
       {},
       std::nullopt,
       "commits wait for any 1 of node2"},
      {"a third standby: the record names it first (weaker: node4 alone may hold a commit once "
       "configured), then PostgreSQL waits for any one of three",
       quorum({both,
               both,
               Lsn(120),
               {{"node2", Lsn(120), true}, {"node3", Lsn(120), true}, {"node4", Lsn(120), false}}},
              1, 1),
       {},
       Q{1, {"node2", "node3", "node4"}},
       Q{1, {"node2", "node3", "node4"}},
       {},
       std::nullopt,
       "commits wait for any 1 of node2, node3 and node4"},
      {"any two of three, lowered to one of three by the count: the record follows the mix",
       quorum({{"node2", "node3", "node4"},
               {"node2", "node3", "node4"},
               Lsn(120),
               {{"node2", Lsn(120), true}, {"node3", Lsn(120), true}, {"node4", Lsn(120), true}}},
              2, 2),
       {},
       Q{1, {"node2", "node3", "node4"}},
       Q{1, {"node2", "node3", "node4"}},
       {},
       std::nullopt,
       "commits wait for any 1 of"},
      {"a member froze for this record while this leader leads: written anew",
       [&] {
         SyncObservation seen = quorum(
             {both, both, Lsn(120), {{"node2", Lsn(120), true}, {"node3", Lsn(120), true}}}, 1, 1);
         seen.member_frozen = true;
         return seen;
       }(),
       {},
       Q{1, both},
       {},
       {},
       std::nullopt,
       ""},
      {"another leader's record: rewritten as this one's, naming nobody, then named at once "
       "(both flushed where the WAL ends)",
       quorum({both, {}, Lsn(120), {{"node2", Lsn(120), true}, {"node3", Lsn(120), true}}, true}, 1,
              std::nullopt),
       {},
       Q{0, {}},
       {},
       Q{1, both},
       std::nullopt,
       "every acknowledged commit is on any 1 of node2 and node3"},
      {"node3 gone and configured out: the record (1 of both) cannot become 1 of node2 until "
       "node2 flushed past the starting point",
       quorum({{"node2"}, both, Lsn(130), {{"node2", Lsn(120), true}}}, 1, 1),
       {.quorum_since = Lsn(125)},
       {},
       {},
       {},
       Lsn(125),
       ""},
      {"...and once it has, it alone is named",
       quorum({{"node2"}, both, Lsn(130), {{"node2", Lsn(125), true}}}, 1, 1),
       {.quorum_since = Lsn(125)},
       {},
       {},
       Q{1, {"node2"}},
       std::nullopt,
       "every acknowledged commit is on each of node2: any of them may take over"},
  };
  for (const QuorumCase& c : cases) {
    SCOPED_TRACE(c.what);
    SyncStep step = plan_sync(c.seen, c.memory, kStart);
    auto as_pair = [](const std::optional<SyncNames>& names,
                      int k) -> std::optional<std::pair<int, SyncNames>> {
      if (!names) return std::nullopt;
      return std::pair{k, *names};
    };
    EXPECT_EQ(as_pair(step.narrow, step.narrow_quorum), c.narrow);
    EXPECT_EQ(as_pair(step.configure, step.configure_any), c.configure);
    EXPECT_EQ(as_pair(step.name, step.name_quorum), c.name);
    EXPECT_EQ(step.memory.quorum_since, c.quorum_since);
    EXPECT_TRUE(step.why.starts_with(c.why)) << step.why;
    EXPECT_EQ(step.why.empty(), std::string(c.why).empty()) << step.why;
  }
}

// Quorum commit turned off while a quorum record and 'ANY 1 (...)' stand: the record is rewritten
// naming nobody (its members need not each have every commit), PostgreSQL is configured anew,
// and a standby is named only once it has caught up under the new list.
TEST(SyncPlan, QuorumTurnedOffUnnamesTheQuorumRecordFirst) {
  SyncObservation seen{{"node2", "node3"},
                       {"node2", "node3"},
                       Lsn(120),
                       {{"node2", Lsn(120), true}, {"node3", Lsn(120), true}}};
  seen.configured_any = 1;
  seen.published_quorum = 1;
  SyncStep step = plan_sync(seen, {}, kStart);
  EXPECT_EQ(step.narrow, SyncNames());
  EXPECT_EQ(step.configure, SyncNames{"node2"});
  EXPECT_EQ(step.configure_any, 0);
  EXPECT_EQ(step.name, std::nullopt);
}

}  // namespace
}  // namespace tandem
