// When an agent may take its server's last answer again instead of asking (core/observe_rest.h).
#include "core/observe_rest.h"

#include <gtest/gtest.h>

#include <random>

namespace tandem {
namespace {

using std::chrono::milliseconds;

RestFacts settled_standby() {
  return RestFacts{.state = PgState::kStandby,
                   .action = Action::kNone,
                   .answer_age = milliseconds(300),
                   .answer_repeated = true,
                   .someone_leads = true,
                   .lease_unchanged_for = milliseconds(150)};
}

RestFacts settled_primary() {
  return RestFacts{.state = PgState::kPrimary,
                   .action = Action::kRenewLease,
                   .answer_age = milliseconds(300),
                   .answer_repeated = true,
                   .leads = true,
                   .someone_leads = true,
                   .renewed_ago = milliseconds(200)};
}

TEST(MayRest, OnlyASettledNodeWhoseLeaseIsRenewedRests) {
  HaConfig ha;  // ttl 1 s, loop 100 ms: renewed every 250 ms
  struct Case {
    const char* what;
    RestFacts facts;
    bool rests;
  };
  auto with = [](RestFacts facts, auto change) {
    change(facts);
    return facts;
  };
  const Case cases[] = {
      {"a standby following a leader that renews", settled_standby(), true},
      {"a primary renewing its lease", settled_primary(), true},
      {"the answer is a second old: asked again",
       with(settled_standby(), [](RestFacts& f) { f.answer_age = milliseconds(1000); }), false},
      {"no answer kept", with(settled_standby(), [](RestFacts& f) { f.answer_age.reset(); }),
       false},
      {"the last answer differed from the one before",
       with(settled_standby(), [](RestFacts& f) { f.answer_repeated = false; }), false},
      {"the lease unrenewed for half its time",
       with(settled_standby(), [](RestFacts& f) { f.lease_unchanged_for = milliseconds(501); }),
       false},
      {"the lease just within half its time",
       with(settled_standby(), [](RestFacts& f) { f.lease_unchanged_for = milliseconds(500); }),
       true},
      {"nobody leads", with(settled_standby(), [](RestFacts& f) { f.someone_leads = false; }),
       false},
      {"another node leads than last cycle",
       with(settled_standby(), [](RestFacts& f) { f.holder_changed = true; }), false},
      {"a switchover asked for",
       with(settled_standby(), [](RestFacts& f) { f.request_pending = true; }), false},
      {"the last step failed", with(settled_standby(), [](RestFacts& f) { f.failed = true; }),
       false},
      {"the last step was a repoint",
       with(settled_standby(), [](RestFacts& f) { f.action = Action::kFollow; }), false},
      {"a standby that holds the lease (about to promote)",
       with(settled_standby(), [](RestFacts& f) { f.leads = true; }), false},
      {"a starting server",
       with(settled_standby(), [](RestFacts& f) { f.state = PgState::kStarting; }), false},
      {"a primary whose renewal is late (a stopped store writer, a slow store)",
       with(settled_primary(), [](RestFacts& f) { f.renewed_ago = milliseconds(351); }), false},
      {"a primary renewed a quarter ttl and a cycle ago",
       with(settled_primary(), [](RestFacts& f) { f.renewed_ago = milliseconds(350); }), true},
      {"a primary without a confirmed renewal",
       with(settled_primary(), [](RestFacts& f) { f.renewed_ago.reset(); }), false},
      {"a primary that does not hold the lease",
       with(settled_primary(), [](RestFacts& f) { f.leads = false; }), false},
      {"a primary that did anything but renew",
       with(settled_primary(), [](RestFacts& f) { f.action = Action::kNone; }), false},
  };
  for (const Case& each : cases) EXPECT_EQ(may_rest(each.facts, ha), each.rests) << each.what;
}

// Under quorum fencing a standby may take over once a majority has not heard from the holder
// for proof_of_fencing (renew_deadline + 5 loops), which a long lease leaves well under half its
// time: the rest ends two cycles before.
TEST(MayRest, UnderQuorumFencingTheRestEndsBeforeTheProofOfFencing) {
  HaConfig ha{.loop_interval = milliseconds(100),
              .ttl = milliseconds(4000),
              .renew_deadline = milliseconds(1000),
              .quorum_fencing = true};  // proof of fencing: 1.5 s
  RestFacts facts = settled_standby();
  facts.lease_unchanged_for = milliseconds(1300);
  EXPECT_TRUE(may_rest(facts, ha));
  facts.lease_unchanged_for = milliseconds(1301);
  EXPECT_FALSE(may_rest(facts, ha)) << "within two cycles of the proof";
  ha.quorum_fencing = false;
  EXPECT_TRUE(may_rest(facts, ha)) << "without quorum fencing, half the lease's 4 s";
}

// A standby at rest sleeps until a cycle before the lease can lapse, at most a lease less two
// cycles (half a lease less one in synchronous mode) and a second; a primary at rest (one machine,
// asynchronous) until a cycle after its next renewal is due; anything else sleeps one loop
// interval.
TEST(RestSleep, OnlyANodeAtRestThatCanBeWokenSleepsLongerNeverPastTheLeaseNorARenewalDue) {
  HaConfig ha;  // ttl 1 s, loop 100 ms: at most 800 ms
  auto resting = [] {
    RestFacts facts = settled_standby();
    facts.lease_lapses_in = milliseconds(900);
    facts.wakeable = true;
    return facts;
  };
  auto with = [](RestFacts facts, auto change) {
    change(facts);
    return facts;
  };
  // A primary at rest that can be woken, its lease renewed `ago`.
  auto resting_primary = [](milliseconds ago) {
    RestFacts facts = settled_primary();
    facts.wakeable = true;
    facts.renewed_ago = ago;
    return facts;
  };
  struct Case {
    const char* what;
    RestFacts facts;
    HaConfig ha;
    milliseconds sleep;
  };
  HaConfig quorum = ha;
  quorum.quorum_fencing = true;
  const Case cases[] = {
      {"a standby at rest, the lease 900 ms from lapsing: until a cycle before", resting(), ha,
       milliseconds(800)},
      {"the lease just renewed, 1 s from lapsing: a lease less two cycles",
       with(resting(), [](RestFacts& f) { f.lease_lapses_in = milliseconds(1000); }), ha,
       milliseconds(800)},
      {"in synchronous mode: half a lease less a cycle (the records name the synchronous)",
       resting(), HaConfig{.synchronous_mode = true}, milliseconds(400)},
      {"the lease 350 ms from lapsing: until a cycle before, and kPastLapse (the cycle after comes "
       "just past the lapse)",
       with(resting(), [](RestFacts& f) { f.lease_lapses_in = milliseconds(350); }), ha,
       milliseconds(260)},
      {"the lease 150 ms from lapsing: one cycle",
       with(resting(), [](RestFacts& f) { f.lease_lapses_in = milliseconds(150); }), ha,
       milliseconds(100)},
      {"the lease past its time (a clock step, a slow read): one cycle",
       with(resting(), [](RestFacts& f) { f.lease_lapses_in = milliseconds(-50); }), ha,
       milliseconds(100)},
      {"the store cannot say when the lease lapses (etcd)",
       with(resting(), [](RestFacts& f) { f.lease_lapses_in.reset(); }), ha, milliseconds(100)},
      {"nobody can wake it (no API)", with(resting(), [](RestFacts& f) { f.wakeable = false; }), ha,
       milliseconds(100)},
      {"under quorum fencing (several machines)", resting(), quorum, milliseconds(100)},
      {"not at rest: the answer differed",
       with(resting(), [](RestFacts& f) { f.answer_repeated = false; }), ha, milliseconds(100)},
      {"not at rest: a switchover asked for",
       with(resting(), [](RestFacts& f) { f.request_pending = true; }), ha, milliseconds(100)},
      {"not at rest: another node leads than last cycle",
       with(resting(), [](RestFacts& f) { f.holder_changed = true; }), ha, milliseconds(100)},
      {"a primary at rest, renewed 200 ms ago: until a cycle after the next renewal is due",
       resting_primary(milliseconds(200)), ha, milliseconds(150)},
      {"a primary at rest, renewed just now: 350 ms", resting_primary(milliseconds(0)), ha,
       milliseconds(350)},
      {"a primary whose renewal is due now: one cycle", resting_primary(milliseconds(300)), ha,
       milliseconds(100)},
      {"a primary whose renewal is late: not at rest, one cycle",
       resting_primary(milliseconds(351)), ha, milliseconds(100)},
      {"a primary nobody can wake",
       with(settled_primary(), [](RestFacts& f) { f.renewed_ago = milliseconds(0); }), ha,
       milliseconds(100)},
      {"a primary in synchronous mode", resting_primary(milliseconds(0)),
       HaConfig{.synchronous_mode = true}, milliseconds(100)},
      {"a primary under quorum fencing", resting_primary(milliseconds(0)), quorum,
       milliseconds(100)},
      {"a primary whose renew_deadline comes before a quarter TTL and a cycle: a cycle before it",
       resting_primary(milliseconds(0)), HaConfig{.renew_deadline = milliseconds(300)},
       milliseconds(200)},
      {"a primary whose cycle failed",
       with(resting_primary(milliseconds(0)), [](RestFacts& f) { f.failed = true; }), ha,
       milliseconds(100)},
  };
  for (const Case& each : cases) {
    EXPECT_EQ(rest_sleep(each.facts, each.ha).count(), each.sleep.count()) << each.what;
  }
  HaConfig long_lease{.loop_interval = milliseconds(100), .ttl = milliseconds(10000)};
  EXPECT_EQ(
      rest_sleep(with(resting(), [](RestFacts& f) { f.lease_lapses_in = milliseconds(5800); }),
                 long_lease)
          .count(),
      1000)
      << "a lease of 10 s lapsing in 5.8 s: a second at most (a lost wake costs no more)";
  EXPECT_EQ(
      rest_sleep(with(resting(), [](RestFacts& f) { f.lease_lapses_in = milliseconds(1050); }),
                 long_lease)
          .count(),
      960)
      << "a lease of 10 s lapsing in 1.05 s: until a cycle before (and kPastLapse)";
}

// A member's record lives a lease and the rest that follows its writing (a lease alone in
// synchronous mode), and an unchanged one is written again when less than two thirds of a lease
// of it would be left by the next cycle's start.
TEST(RecordTtl, ARecordSpansTheRestAfterItAndIsWrittenAgainBeforeItGetsShort) {
  HaConfig ha;  // ttl 1 s, loop 100 ms
  HaConfig sync{.synchronous_mode = true};
  struct Case {
    const char* what;
    milliseconds since_written, sleep, written_ttl;
    HaConfig ha;
    bool due;
  };
  const Case cases[] = {
      {"no rest: not yet a third of a lease", milliseconds(200), milliseconds(100),
       milliseconds(1000), ha, false},
      {"no rest: a third of a lease", milliseconds(333), milliseconds(100), milliseconds(1000), ha,
       true},
      {"a rest of 700 ms after one written with a lease: due at once", milliseconds(0),
       milliseconds(800), milliseconds(1000), ha, true},
      {"written before a rest of 700 ms, the next after 800: due again", milliseconds(800),
       milliseconds(800), milliseconds(1700), ha, true},
      {"written before a rest of 700 ms, the next cycle awake: not due", milliseconds(800),
       milliseconds(100), milliseconds(1700), ha, false},
      {"synchronous mode: a third of a lease, as without rests", milliseconds(100),
       milliseconds(400), milliseconds(1000), sync, true},
  };
  for (const Case& each : cases) {
    EXPECT_EQ(record_due(each.since_written, each.sleep, each.written_ttl, each.ha), each.due)
        << each.what;
  }
  EXPECT_EQ(record_ttl(milliseconds(100), ha).count(), 1000) << "no rest: a lease";
  EXPECT_EQ(record_ttl(milliseconds(800), ha).count(), 1700) << "a lease and the rest";
  EXPECT_EQ(record_ttl(milliseconds(400), sync).count(), 1000) << "synchronous mode: a lease";

  // Any run of cycles, each followed by a sleep from one loop interval to the longest rest: at
  // every cycle's start the record has more than two thirds of a lease less a loop interval left
  // (as when every sleep was a loop interval), and it never lives longer than a lease and the
  // longest rest.
  for (HaConfig config : {ha, sync}) {
    std::mt19937 random(7);
    std::uniform_int_distribution<int> pick(100, static_cast<int>(longest_rest(config).count()));
    milliseconds now{0}, written_at{0}, ttl{0};
    bool written = false;
    for (int cycle = 0; cycle < 10000; ++cycle) {
      if (written) {
        ASSERT_GT(written_at + ttl - now, config.ttl - config.ttl / 3 - config.loop_interval)
            << "cycle " << cycle;
      }
      milliseconds sleep(pick(random));
      if (!written || record_due(now - written_at, sleep, ttl, config)) {
        written = true;
        written_at = now;
        ttl = record_ttl(sleep, config);
        ASSERT_LE(ttl, config.ttl + longest_rest(config));
      }
      now += sleep;
    }
  }
}

// The health checks count an agent alive while its last cycle is at most this old: a lease and
// the longest rest where a standby may rest past half a lease, a lease elsewhere.
TEST(AgentAliveFor, ALeaseAndTheLongestRestWhereAStandbyRestsLongALeaseElsewhere) {
  EXPECT_EQ(agent_alive_for(HaConfig{}).count(), 1800) << "one machine, asynchronous";
  EXPECT_EQ(agent_alive_for(HaConfig{.synchronous_mode = true}).count(), 1000)
      << "synchronous mode: rests of half a lease, as before";
  EXPECT_EQ(agent_alive_for(HaConfig{.quorum_fencing = true}).count(), 1000)
      << "several machines: no rest";
}

TEST(PlanSleep, AWakeEndsASleepAtOnceUnlessManyCameEarlyWithinALease) {
  HaConfig ha;  // loop 100 ms
  struct Case {
    const char* what;
    milliseconds rest;
    int early;
    milliseconds deaf_until;
    milliseconds until;
  };
  const Case cases[] = {
      {"no cycle came early: a wake ends a loop interval's sleep at once", milliseconds(100), 0,
       milliseconds(0), milliseconds(100)},
      {"and a rest", milliseconds(400), 0, milliseconds(0), milliseconds(400)},
      {"a switchover's two wakes (its request, its hand-over) and more", milliseconds(100),
       kEarlyCycles - 1, milliseconds(0), milliseconds(100)},
      {"kEarlyCycles came early within a lease: deaf for a loop interval", milliseconds(100),
       kEarlyCycles, milliseconds(100), milliseconds(100)},
      {"then a wake ends its rest", milliseconds(400), kEarlyCycles + 3, milliseconds(100),
       milliseconds(400)},
      {"never shorter than a loop interval", milliseconds(30), 0, milliseconds(0),
       milliseconds(100)},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    SleepPlan plan = plan_sleep(each.rest, each.early, ha.loop_interval);
    EXPECT_EQ(plan.deaf_until, each.deaf_until);
    EXPECT_EQ(plan.until, each.until);
  }
  EXPECT_TRUE(came_early(milliseconds(99), ha.loop_interval));
  EXPECT_FALSE(came_early(milliseconds(100), ha.loop_interval));
  EXPECT_FALSE(came_early(milliseconds(400), ha.loop_interval));
}

// Under a flood of wakes, at most kEarlyCycles cycles per lease's time come early: the rate
// stays within the idle one and those, whatever the wakes.
TEST(PlanSleep, AFloodOfWakesAddsAFewCyclesPerLeaseAtMost) {
  HaConfig ha;  // loop 100 ms, lease 1 s
  milliseconds now(0), cycle_time(5);
  EarlyCycles early;
  int cycles = 0;
  while (now < milliseconds(10000)) {
    milliseconds start = now;
    ++cycles;
    now += cycle_time;
    SleepPlan plan = plan_sleep(milliseconds(100), early.within(now, ha.ttl), ha.loop_interval);
    now = std::max(now, start + plan.deaf_until);  // a wake always waiting
    early.after_sleep(now - start, now, ha.loop_interval);
  }
  EXPECT_LE(cycles, (10 + kEarlyCycles) * 10 + kEarlyCycles);
  EXPECT_GE(cycles, 10 * 10);
}

}  // namespace
}  // namespace tandem
