// The failures in a row that make decide() escalate: what counts, against whom, and what
// forgives them (core/attempts.h).
#include "core/attempts.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tandem {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Decision rejoin_of(const std::string& leader, bool uncounted = false) {
  Decision decision{Action::kRejoin, "a former primary: rejoin it", leader};
  decision.uncounted_rejoin = uncounted;
  return decision;
}

NodeObservation stopped() {
  NodeObservation node;
  node.state = PgState::kStopped;
  return node;
}

// Each step: a rejoin of `leader` (counted or not) that failed, 4 s after the one before; then
// what the next cycle's observation says.
struct Step {
  std::string leader;
  bool uncounted = false;
};
struct Case {
  const char* name;
  std::vector<Step> steps;
  int failures;
  bool escalates;
};

TEST(Attempts, RejoinsFailedInARowAgainstOneRunningLeaderEscalate) {
  for (const Case& c : std::vector<Case>{
           {"three against a running primary, over 12 s",
            {{"node1"}, {"node1"}, {"node1"}},
            3,
            true},
           {"two", {{"node1"}, {"node1"}}, 2, false},
           {"the leader not yet a primary: none counts",
            {{"node1", true}, {"node1", true}, {"node1", true}, {"node1", true}},
            0,
            false},
           {"uncounted between counted ones: the streak goes on",
            {{"node1"}, {"node1", true}, {"node1"}, {"node1", true}, {"node1"}},
            3,
            true},
           // Review of 2a86fb0: two failures against node1 (shutting down for a switchover),
           // node3 holding the lease unpromoted, then one failure against node3 once promoted.
           {"a new leader starts a new streak",
            {{"node1"}, {"node1"}, {"node3", true}, {"node3", true}, {"node3"}},
            1,
            false},
           {"and three against it escalate",
            {{"node1"}, {"node1"}, {"node3"}, {"node3"}, {"node3"}},
            3,
            true},
       }) {
    Attempts attempts;
    Attempts::TimePoint now{};
    for (const Step& step : c.steps) {
      NodeObservation node = stopped();
      attempts.observe(node, now);
      attempts.record(rejoin_of(step.leader, step.uncounted), false, false, now);
      now += seconds(4);
    }
    NodeObservation node = stopped();
    attempts.observe(node, now);
    EXPECT_EQ(node.rejoin_failures, c.failures) << c.name;
    EXPECT_EQ(should_escalate(node.rejoin_failures, node.rejoin_failing_for), c.escalates)
        << c.name;
  }
}

TEST(Attempts, ARejoinThatWorksOrAStandbyThatStreamsForgivesThem) {
  Attempts attempts;
  Attempts::TimePoint now{};
  attempts.record(rejoin_of("node1"), false, false, now);
  attempts.record(rejoin_of("node1"), true, false, now + seconds(1));
  NodeObservation node = stopped();
  attempts.observe(node, now + seconds(2));
  EXPECT_EQ(node.rejoin_failures, 0);

  attempts.record(rejoin_of("node1"), false, false, now);
  NodeObservation streaming;
  streaming.state = PgState::kStandby;
  streaming.not_streaming_for = milliseconds(0);
  attempts.observe(streaming, now + seconds(1));
  EXPECT_EQ(streaming.rejoin_failures, 0);
  NodeObservation waiting;
  waiting.state = PgState::kStandby;
  waiting.not_streaming_for = milliseconds(300);
  attempts.record(rejoin_of("node1"), false, false, now);
  attempts.observe(waiting, now + seconds(1));
  EXPECT_EQ(waiting.rejoin_failures, 1) << "a standby not streaming forgives nothing";
}

TEST(Attempts, RestartsInPlaceCountUntilTheNodeRunsAsAPrimaryForTenSeconds) {
  Attempts attempts;
  Attempts::TimePoint now{};
  Decision start{Action::kStartPrimary, "restart it in place", ""};
  Decision standby_data{Action::kStartStandby, "finish its promotion", ""};
  attempts.record(start, true, true, now);          // counted whatever its result: it must stay up
  attempts.record(standby_data, true, false, now);  // not the leader's: not counted
  attempts.record(standby_data, true, true, now);
  NodeObservation node = stopped();
  attempts.observe(node, now + seconds(1));
  EXPECT_EQ(node.start_failures, 2);
  EXPECT_EQ(node.start_failing_for, seconds(1));
  NodeObservation primary;
  primary.state = PgState::kPrimary;
  attempts.observe(primary, now + seconds(2));
  attempts.observe(primary, now + seconds(11));
  EXPECT_EQ(primary.start_failures, 2) << "nine seconds as a primary forgive nothing";
  attempts.observe(primary, now + seconds(12));
  EXPECT_EQ(primary.start_failures, 0);
  attempts.record(start, true, true, now + seconds(13));
  attempts.record({Action::kReleaseLease, "release it", ""}, true, true, now + seconds(14));
  node = stopped();
  attempts.observe(node, now + seconds(15));
  EXPECT_EQ(node.start_failures, 0) << "a released lease forgives them";
}

}  // namespace
}  // namespace tandem
