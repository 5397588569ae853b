// The health checks load balancers call: which snapshot answers 200 on which path.
#include "api/health.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const Clock::time_point kNow = Clock::time_point(std::chrono::hours(1));

MemberRecord member(const std::string& name, PgState state, std::uint64_t lsn) {
  return {.name = name,
          .state = state,
          .timeline = 1,
          .received_lsn = Lsn(lsn),
          .replayed_lsn = state == PgState::kStandby ? std::optional(Lsn(lsn)) : std::nullopt};
}

// node1 leads at 0/3000000; node2 has replayed 1 MiB less, node3 3 MiB less.
ClusterView view() {
  ClusterView view{.initialized = true, .leader = LeaderRecord{"node1", 7}};
  view.members["node1"] = member("node1", PgState::kPrimary, 0x3000000);
  view.members["node1"].primary = PrimaryDetails{.replay_lag_s = {{"node2", 0.2}, {"node3", 4}}};
  view.members["node2"] = member("node2", PgState::kStandby, 0x3000000 - (1 << 20));
  view.members["node3"] = member("node3", PgState::kStandby, 0x3000000 - (3 << 20));
  return view;
}

struct Case {
  const char* name;
  std::string self;
  PgState state;
  milliseconds lease_age;      // how long ago the lease was renewed (primary)
  milliseconds snapshot_age;   // how long ago the agent's last cycle ended
  milliseconds not_streaming;  // standby
  bool store_reachable;
  const char* lag;  // ?lag=, or nullptr
  std::map<HealthCheck, int> expected;
};

constexpr auto P = HealthCheck::kPrimary;
constexpr auto R = HealthCheck::kReplica;
constexpr auto RO = HealthCheck::kReadOnly;
constexpr auto H = HealthCheck::kHealth;
constexpr auto L = HealthCheck::kLiveness;
constexpr auto RD = HealthCheck::kReadiness;

const Case kCases[] = {
    {"leader with a fresh lease",
     "node1",
     PgState::kPrimary,
     milliseconds(100),
     milliseconds(50),
     milliseconds(0),
     true,
     nullptr,
     {{P, 200}, {R, 503}, {RO, 200}, {H, 200}, {L, 200}, {RD, 200}}},
    {"leader whose lease ran out",
     "node1",
     PgState::kPrimary,
     milliseconds(1000),
     milliseconds(50),
     milliseconds(0),
     true,
     nullptr,
     {{P, 503}, {R, 503}, {RO, 503}, {H, 200}, {L, 200}, {RD, 503}}},
    {"primary without the lease (store unreachable)",
     "node1",
     PgState::kPrimary,
     milliseconds(100),
     milliseconds(50),
     milliseconds(0),
     false,
     nullptr,
     {{P, 503}, {RO, 503}, {H, 200}, {L, 200}}},
    {"primary that is not the leader",
     "node2",
     PgState::kPrimary,
     milliseconds(100),
     milliseconds(50),
     milliseconds(0),
     true,
     nullptr,
     {{P, 503}, {R, 503}, {RO, 503}, {RD, 503}}},
    {"streaming standby",
     "node2",
     PgState::kStandby,
     milliseconds(0),
     milliseconds(50),
     milliseconds(0),
     true,
     nullptr,
     {{P, 503}, {R, 200}, {RO, 200}, {H, 200}, {RD, 200}}},
    {"standby that stopped streaming",
     "node2",
     PgState::kStandby,
     milliseconds(0),
     milliseconds(50),
     milliseconds(300),
     true,
     nullptr,
     {{P, 503}, {R, 503}, {RO, 503}, {H, 200}, {L, 200}, {RD, 503}}},
    {"standby within a byte limit",
     "node2",
     PgState::kStandby,
     milliseconds(0),
     milliseconds(50),
     milliseconds(0),
     true,
     "2MB",
     {{R, 200}, {RO, 200}}},
    {"standby beyond a byte limit",
     "node3",
     PgState::kStandby,
     milliseconds(0),
     milliseconds(50),
     milliseconds(0),
     true,
     "2MB",
     {{R, 503}, {RO, 503}}},
    {"standby beyond a byte limit in bytes",
     "node2",
     PgState::kStandby,
     milliseconds(0),
     milliseconds(50),
     milliseconds(0),
     true,
     "1048575",
     {{R, 503}}},
    {"standby within a time limit",
     "node2",
     PgState::kStandby,
     milliseconds(0),
     milliseconds(50),
     milliseconds(0),
     true,
     "1s",
     {{R, 200}}},
    {"standby beyond a time limit",
     "node3",
     PgState::kStandby,
     milliseconds(0),
     milliseconds(50),
     milliseconds(0),
     true,
     "1s",
     {{R, 503}}},
    {"standby whose agent rests between cycles (a lease and a rest at most)",
     "node2",
     PgState::kStandby,
     milliseconds(0),
     milliseconds(1700),
     milliseconds(0),
     true,
     nullptr,
     {{R, 200}, {RO, 200}, {H, 200}, {L, 200}, {RD, 200}}},
    {"standby whose agent stopped cycling",
     "node2",
     PgState::kStandby,
     milliseconds(0),
     milliseconds(5000),
     milliseconds(0),
     true,
     nullptr,
     {{R, 503}, {RO, 503}, {H, 200}, {L, 503}, {RD, 503}}},
    {"stopped PostgreSQL",
     "node2",
     PgState::kStopped,
     milliseconds(0),
     milliseconds(50),
     milliseconds(0),
     true,
     nullptr,
     {{P, 503}, {R, 503}, {RO, 503}, {H, 503}, {L, 200}}},
    {"starting PostgreSQL",
     "node2",
     PgState::kStarting,
     milliseconds(0),
     milliseconds(50),
     milliseconds(0),
     true,
     nullptr,
     {{H, 503}, {RD, 503}}},
};

TEST(HealthTest, StatusCodePerCheck) {
  for (const Case& each : kCases) {
    AgentSnapshot snapshot{.cycles = 10, .at = kNow - each.snapshot_age};
    snapshot.node.state = each.state;
    snapshot.node.not_streaming_for = each.not_streaming;
    if (each.state == PgState::kPrimary) snapshot.node.lease_renewed_at = kNow - each.lease_age;
    if (each.store_reachable) snapshot.view = view();
    std::optional<LagLimit> lag;
    if (each.lag != nullptr) lag = parse_lag_limit(each.lag).value();
    for (const auto& [check, status] : each.expected) {
      HealthReply reply = check_health(check, {.self = each.self,
                                               .snapshot = snapshot,
                                               .ttl = milliseconds(1000),
                                               .alive_for = milliseconds(1800),
                                               .now = kNow,
                                               .lag_limit = lag});
      EXPECT_EQ(reply.status, status)
          << each.name << ", check " << static_cast<int>(check) << ": " << reply.body.dump();
      EXPECT_EQ(reply.body["name"], each.self) << each.name;
    }
  }
}

TEST(HealthTest, BodyDescribesTheStandbysLag) {
  AgentSnapshot snapshot{.view = view(), .cycles = 1, .at = kNow};
  snapshot.node.state = PgState::kStandby;
  snapshot.node.upstream = "node1";
  HealthReply reply = check_health(HealthCheck::kReplica, {.self = "node3",
                                                           .snapshot = snapshot,
                                                           .ttl = milliseconds(1000),
                                                           .alive_for = milliseconds(1800),
                                                           .now = kNow});
  EXPECT_EQ(reply.body["role"], "replica");
  EXPECT_EQ(reply.body["lag_bytes"], 3 << 20);
  EXPECT_EQ(reply.body["lag_seconds"], 4.0);
  EXPECT_EQ(reply.body["upstream"], "node1");
}

TEST(HealthTest, TimeLagNotYetMeasured) {
  ClusterView measured = view();
  measured.members["node1"].primary.reset();  // the primary has not published its lags yet
  AgentSnapshot snapshot{.view = measured, .cycles = 1, .at = kNow};
  snapshot.node.state = PgState::kStandby;
  auto check = [&](const std::string& self) {
    return check_health(HealthCheck::kReplica, {.self = self,
                                                .snapshot = snapshot,
                                                .ttl = milliseconds(1000),
                                                .alive_for = milliseconds(1800),
                                                .now = kNow,
                                                .lag_limit = LagLimit(milliseconds(10000))})
        .status;
  };
  measured.members["node2"].replayed_lsn = Lsn(0x3000000);  // caught up
  snapshot.view = measured;
  EXPECT_EQ(check("node2"), 200);
  EXPECT_EQ(check("node3"), 503);  // 3 MiB behind, for an unknown time
}

TEST(HealthTest, PathsAreAsPatronisAreNamed) {
  EXPECT_EQ(health_check_for("/primary"), HealthCheck::kPrimary);
  EXPECT_EQ(health_check_for("/master"), HealthCheck::kPrimary);
  EXPECT_EQ(health_check_for("/leader"), HealthCheck::kPrimary);
  EXPECT_EQ(health_check_for("/read-write"), HealthCheck::kPrimary);
  EXPECT_EQ(health_check_for("/replica"), HealthCheck::kReplica);
  EXPECT_EQ(health_check_for("/read-only"), HealthCheck::kReadOnly);
  EXPECT_EQ(health_check_for("/health"), HealthCheck::kHealth);
  EXPECT_EQ(health_check_for("/cluster"), std::nullopt);
}

TEST(HealthTest, LagLimits) {
  struct {
    const char* text;
    std::optional<LagLimit> expected;
  } cases[] = {
      {"1048576", LagLimit(std::int64_t{1048576})},
      {"16MB", LagLimit(std::int64_t{16} << 20)},
      {"512kB", LagLimit(std::int64_t{512} << 10)},
      {"10s", LagLimit(milliseconds(10000))},
      {"250ms", LagLimit(milliseconds(250))},
      {"2min", LagLimit(milliseconds(120000))},
      {"", std::nullopt},
      {"fast", std::nullopt},
      {"-5", std::nullopt},
      {"10 parsecs", std::nullopt},
  };
  for (const auto& each : cases) {
    auto parsed = parse_lag_limit(each.text);
    if (each.expected) {
      ASSERT_TRUE(parsed) << each.text << ": " << parsed.error().message;
      EXPECT_EQ(*parsed, *each.expected) << each.text;
    } else {
      EXPECT_FALSE(parsed) << each.text;
    }
  }
}

}  // namespace
}  // namespace tandem
