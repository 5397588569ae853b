// /metrics: the text parses as Prometheus' exposition format, follows its naming conventions,
// and says what the snapshot says. The parser itself is tested first, on text it must refuse.
#include "api/metrics.h"

#include <gtest/gtest.h>

#include "../support/prometheus_text.h"

namespace tandem {
namespace {

using testing::naming_violations;
using testing::parse_prometheus_text;

TEST(PrometheusParserTest, RefusesWhatPrometheusRefuses) {
  const char* refused[] = {
      "metric 1",                         // no final newline
      "1metric 1\n",                      // name starts with a digit
      "metric{label=\"x\" 1\n",           // unterminated label set
      "metric{label=x} 1\n",              // unquoted value
      "metric{__reserved=\"x\"} 1\n",     // reserved label name
      "metric{a=\"1\",a=\"2\"} 1\n",      // label twice
      "metric one\n",                     // value not a number
      "metric 1 2 3\n",                   // text after the timestamp
      "metric 1\nmetric 2\n",             // the same series twice
      "# TYPE metric thing\nmetric 1\n",  // unknown type
      "metric 1\n# TYPE metric gauge\n",  // TYPE after samples
      "metric{a=\"\\x\"} 1\n",            // bad escape
  };
  for (const char* text : refused) {
    EXPECT_FALSE(parse_prometheus_text(text)) << text;
  }
  auto accepted = parse_prometheus_text(
      "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"q\\\"\\n\"} 3 1700000000\n"
      "# a comment\nb NaN\nc +Inf\n");
  ASSERT_TRUE(accepted) << accepted.error().message;
  EXPECT_EQ(accepted->value("a_total", {{"x", "q\"\n"}}), 3);
}

TEST(PrometheusParserTest, ConventionsAreChecked) {
  auto bad = parse_prometheus_text(
      "# HELP x_lag_ms Lag.\n# TYPE x_lag_ms gauge\nx_lag_ms 1\n"
      "# HELP other_count Count.\n# TYPE other_count counter\nother_count 1\n");
  ASSERT_TRUE(bad);
  auto violations = naming_violations(*bad, "x_");
  EXPECT_GE(violations.size(), 4u);  // _ms, no unit, counter without _total, prefix
}

AgentSnapshot leader_snapshot() {
  AgentSnapshot snapshot{.cycles = 42,
                         .lease_remaining = std::chrono::milliseconds(750),
                         .lease_round_trip = std::chrono::milliseconds(120)};
  snapshot.node.state = PgState::kPrimary;
  snapshot.node.timeline = 3;
  snapshot.node.received_lsn = Lsn(0x5000000);
  snapshot.decision = {.action = Action::kRenewLease, .reason = "renewed \"the\" lease"};
  ClusterView view{.initialized = true, .leader = LeaderRecord{"node1", 9}};
  view.members["node1"] = {
      .name = "node1",
      .state = PgState::kPrimary,
      .timeline = 3,
      .received_lsn = Lsn(0x5000000),
      .primary = PrimaryDetails{
          .slots = {{"node2", true, "reserved", 4096}, {"node3", false, "extended", 1 << 30}},
          .replay_lag_s = {{"node2", 0.015}},
          .archiver =
              ArchiverRow{.archived_count = 17,
                          .last_archived_wal = "000000030000000000000005",
                          .last_archived_at = WallTime(std::chrono::seconds(1'800'000'000)),
                          .failed_count = 2,
                          .last_failed_wal = "000000030000000000000006",
                          .last_failed_at = WallTime(std::chrono::seconds(1'800'000'010))}}};
  view.members["node2"] = {.name = "node2",
                           .state = PgState::kStandby,
                           .timeline = 3,
                           .received_lsn = Lsn(0x5000000),
                           .replayed_lsn = Lsn(0x5000000 - 8192)};
  view.last_backup = LastBackup{.label = "20261205-050000F",
                                .type = "full",
                                .stopped_s = 1'800'000'000,
                                .checked_ms = 1'800'000'100'000};
  snapshot.view = view;
  snapshot.node.wall_ms = 1'800'003'600'000;  // an hour after the backup ended
  return snapshot;
}

TEST(MetricsTest, ParsesAndFollowsTheConventions) {
  AgentSnapshot snapshot = leader_snapshot();
  std::vector<HistoryEntry> history = {{.to = "node1", .timeline = 1},
                                       {.from = "node1", .to = "node2", .timeline = 2},
                                       {.from = "node2", .to = "node1", .timeline = 3}};
  std::string text = render_metrics({.self = "node1", .snapshot = snapshot, .history = history});
  auto parsed = parse_prometheus_text(text);
  ASSERT_TRUE(parsed) << parsed.error().message << "\n" << text;
  EXPECT_EQ(naming_violations(*parsed, "tandem_"), std::vector<std::string>{}) << text;

  EXPECT_EQ(parsed->value("tandem_postgres_state", {{"state", "primary"}}), 1);
  EXPECT_EQ(parsed->value("tandem_postgres_state", {{"state", "standby"}}), 0);
  EXPECT_EQ(parsed->value("tandem_leader"), 1);
  EXPECT_EQ(parsed->value("tandem_timeline"), 3);
  EXPECT_EQ(parsed->value("tandem_wal_position_bytes", {{"kind", "received"}}), 0x5000000);
  EXPECT_EQ(parsed->value("tandem_replication_lag_bytes", {{"member", "node2"}}), 8192);
  EXPECT_EQ(parsed->value("tandem_replication_lag_seconds", {{"member", "node2"}}), 0.015);
  EXPECT_EQ(
      parsed->value("tandem_slot_retained_bytes", {{"slot", "node3"}, {"wal_status", "extended"}}),
      1 << 30);
  EXPECT_EQ(parsed->value("tandem_slot_active", {{"slot", "node3"}}), 0);
  EXPECT_EQ(parsed->value("tandem_archive_archived_total"), 17);
  EXPECT_EQ(parsed->value("tandem_archive_failed_total"), 2);
  EXPECT_EQ(parsed->value("tandem_archive_failing"), 1);
  EXPECT_EQ(parsed->value("tandem_archive_last_archived_timestamp_seconds"), 1.8e9);
  EXPECT_EQ(parsed->value("tandem_backup_last_completion_timestamp_seconds"), 1.8e9);
  EXPECT_EQ(parsed->value("tandem_backup_last_age_seconds"), 3600);
  EXPECT_EQ(parsed->value("tandem_failovers_total"), 2);
  EXPECT_EQ(parsed->value("tandem_lease_remaining_seconds"), 0.75);
  EXPECT_EQ(parsed->value("tandem_lease_renewal_seconds"), 0.12);
  EXPECT_EQ(
      parsed->value("tandem_last_decision_info", {{"action", "renew-lease"}, {"failed", "false"}}),
      1);
  EXPECT_EQ(parsed->value("tandem_agent_cycles_total"), 42);
  EXPECT_EQ(parsed->value("tandem_store_reachable"), 1);
  EXPECT_EQ(parsed->value("tandem_failures_in_a_row", {{"step", "rejoin"}}), 0);
}

// Issue 10: what fails again and again shows in the metrics before it is escalated.
TEST(MetricsTest, FailuresInARow) {
  AgentSnapshot snapshot{.cycles = 9};
  snapshot.node.state = PgState::kStopped;
  snapshot.node.rejoin_failures = 2;
  snapshot.node.rejoin_failing_for = std::chrono::milliseconds(4500);
  auto parsed = parse_prometheus_text(
      render_metrics({.self = "node2", .snapshot = snapshot, .history = std::nullopt}));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->value("tandem_failures_in_a_row", {{"step", "rejoin"}}), 2);
  EXPECT_EQ(parsed->value("tandem_failing_seconds", {{"step", "rejoin"}}), 4.5);
  EXPECT_EQ(parsed->value("tandem_failures_in_a_row", {{"step", "start"}}), 0);
}

TEST(MetricsTest, WithoutTheStore) {
  AgentSnapshot snapshot{.cycles = 1};
  snapshot.node.state = PgState::kStandby;
  std::string text =
      render_metrics({.self = "node2", .snapshot = snapshot, .history = std::nullopt});
  auto parsed = parse_prometheus_text(text);
  ASSERT_TRUE(parsed) << parsed.error().message << "\n" << text;
  EXPECT_EQ(naming_violations(*parsed, "tandem_"), std::vector<std::string>{});
  EXPECT_EQ(parsed->value("tandem_store_reachable"), 0);
  EXPECT_EQ(parsed->value("tandem_leader"), 0);
  EXPECT_FALSE(parsed->value("tandem_failovers_total"));
}

}  // namespace
}  // namespace tandem
