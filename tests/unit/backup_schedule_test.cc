// Scheduled backups: which one the leader's agent starts, and when (core/backup_schedule.h).
#include "core/backup_schedule.h"

#include <gtest/gtest.h>

#include "core/cluster_config.h"
#include "core/decide.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kHour{3'600'000};
constexpr milliseconds kWeek{7 * 24 * 3'600'000LL};
// Half past the 1000th hour since the epoch: the slot of one hour from that hour on.
constexpr std::int64_t kNow = 1'000 * kHour.count() + kHour.count() / 2;

TEST(BackupSchedule, OneBackupPerSlotTakenAgainAfterAFailoverOrAFailure) {
  ClusterView view;
  view.members["node1"] = {.name = "node1",
                           .state = PgState::kPrimary,
                           .primary = PrimaryDetails{.replay_lag_s = {{"node2", 0}, {"node3", 0}}}};
  view.members["node2"] = {.name = "node2", .state = PgState::kStandby, .upstream = "node1"};
  view.members["node3"] = {.name = "node3", .state = PgState::kStandby, .upstream = "node1"};
  const std::int64_t slot = 1'000 * kHour.count();
  std::int64_t week_ago = kNow - kWeek.count();
  struct Case {
    const char* what;
    std::optional<BackupRecord> record;
    bool running_here;
    const char* type;  // nullptr: none
  };
  const Case cases[] = {
      {"never taken: a full one", std::nullopt, false, "full"},
      {"the slot's is done", BackupRecord{slot, "done", "node1", "incr", kNow - 10, kNow - 99},
       false, nullptr},
      {"one runs here", std::nullopt, true, nullptr},
      {"last slot's done, a full one a day ago: incremental",
       BackupRecord{slot - kHour.count(), "done", "node1", "incr", kNow - kHour.count(),
                    kNow - 86'400'000},
       false, "incr"},
      {"last full a week ago: full",
       BackupRecord{slot - kHour.count(), "done", "node1", "incr", kNow - kHour.count(), week_ago},
       false, "full"},
      {"started by the former leader (a failover since): taken again",
       BackupRecord{slot, "running", "node2", "incr", kNow - 1000, kNow - 86'400'000}, false,
       "incr"},
      {"started by this agent before it restarted: taken again",
       BackupRecord{slot, "running", "node1", "incr", kNow - 1000, kNow - 86'400'000}, false,
       "incr"},
      {"failed 10 s ago: not yet",
       BackupRecord{slot, "failed", "node1", "incr", kNow - 10'000, kNow - 86'400'000}, false,
       nullptr},
      {"failed 2 min ago: again",
       BackupRecord{slot, "failed", "node1", "incr", kNow - 120'000, kNow - 86'400'000}, false,
       "incr"},
      {"busy (another pgBackRest held the lock) 2 s ago: not yet",
       BackupRecord{slot, "busy", "node1", "incr", kNow - 2'000, kNow - 86'400'000, kNow - 2'000},
       false, nullptr},
      {"busy 6 s ago: again, long before a failure's minute",
       BackupRecord{slot, "busy", "node1", "incr", kNow - 6'000, kNow - 86'400'000, kNow - 6'000},
       false, "incr"},
      {"busy for 2 min, last refused 6 s ago: no longer soon, as a failure",
       BackupRecord{slot, "busy", "node1", "incr", kNow - 6'000, kNow - 86'400'000, kNow - 120'000},
       false, nullptr},
      {"busy for 2 min, last refused 61 s ago: again",
       BackupRecord{slot, "busy", "node1", "incr", kNow - 61'000, kNow - 86'400'000,
                    kNow - 180'000},
       false, "incr"},
      {"a record from a clock ahead",
       BackupRecord{slot + kHour.count(), "done", "node2", "incr", kNow, 0}, false, nullptr},
      {"a record of a shorter schedule, later in this slot (the schedule made longer)",
       BackupRecord{slot + kHour.count() / 4, "done", "node1", "incr", kNow, kNow - 99}, false,
       nullptr},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    view.backup = each.record;
    auto planned = plan_scheduled_backup(kHour, kWeek, view, "node1", kNow, each.running_here);
    if (each.record && each.record->state == "running" && each.record->by == "node1") {
      // Ended here, its "done" not written (the store out of reach): not taken again.
      EXPECT_FALSE(plan_scheduled_backup(kHour, kWeek, view, "node1", kNow, false, slot));
    }
    if (each.type == nullptr) {
      EXPECT_FALSE(planned) << planned->type;
      continue;
    }
    ASSERT_TRUE(planned);
    EXPECT_EQ(planned->type, each.type);
    EXPECT_EQ(planned->slot_ms, slot);
    EXPECT_EQ(planned->from, "node2") << "from the first streaming standby";
    EXPECT_EQ(planned->last_full_ms, each.record ? each.record->last_full_ms : 0);
  }
  EXPECT_FALSE(plan_scheduled_backup(milliseconds(0), kWeek, view, "node1", kNow, false))
      << "no schedule";
  view.backup.reset();
  view.members["node1"].primary->replay_lag_s.erase("node2");
  auto third = plan_scheduled_backup(kHour, kWeek, view, "node1", kNow, false);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->from, "node3") << "node2 points at node1 but the primary sees it not stream";
  view.members.erase("node2");
  view.members.erase("node3");
  auto alone = plan_scheduled_backup(kHour, kWeek, view, "node1", kNow, false);
  ASSERT_TRUE(alone);
  EXPECT_EQ(alone->from, "") << "no standby streams: from the primary";
}

TEST(BackupSchedule, TheConfigSaysHowOftenAndRefusesTheImpossible) {
  auto parse = [](const std::string& backup) {
    return parse_config("cluster: c\nbackup: {repository: /srv/repo" + backup +
                            "}\nnodes:\n  - {name: node1, data_dir: /d/1}\n  - {name: node2, "
                            "port: 5433, data_dir: /d/2}\n",
                        "/etc/tandem");
  };
  auto config = parse(", schedule: 6h, full_every: 2d");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->backup.schedule, 6 * kHour);
  EXPECT_EQ(config->backup.full_every, 48 * kHour);
  auto again = parse_config(render_config(*config), "/etc/tandem");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->backup.schedule, 6 * kHour);
  EXPECT_EQ(again->backup.full_every, 48 * kHour);
  for (const char* bad : {", schedule: 1s", ", schedule: 1h, full_every: 30m", ", schedule: x"}) {
    auto refused = parse(bad);
    EXPECT_FALSE(refused) << bad;
  }
}

// decide() plans a scheduled backup for the leader's running primary only: never on a standby,
// never on a node that does not hold the lease, never without a schedule.
TEST(BackupSchedule, OnlyTheLeadersRunningPrimaryIsGivenOne) {
  HaConfig ha{.self = "node1", .backup_schedule = kHour, .backup_full_every = kWeek};
  ClusterView view{.initialized = true, .leader = LeaderRecord{"node1", 7}};
  view.members["node1"] = {.name = "node1", .state = PgState::kPrimary, .timeline = 1};
  view.members["node2"] = {.name = "node2", .state = PgState::kStandby, .timeline = 1};
  NodeObservation primary{.state = PgState::kPrimary, .timeline = 1};
  primary.wall_ms = kNow;
  std::chrono::steady_clock::time_point now{std::chrono::seconds(100)};
  Decision decision = decide(view, primary, ha, now);
  ASSERT_TRUE(decision.backup) << action_name(decision.action) << ": " << decision.reason;
  EXPECT_EQ(decision.backup->type, "full");

  NodeObservation standby{.state = PgState::kStandby, .timeline = 1, .upstream = "node1"};
  standby.wall_ms = kNow;
  EXPECT_FALSE(
      decide(view, standby, HaConfig{.self = "node2", .backup_schedule = kHour}, now).backup);
  view.leader = LeaderRecord{"node2", 8};  // another leads: node1 is to step down, not back up
  EXPECT_FALSE(decide(view, primary, ha, now).backup);
  view.leader = LeaderRecord{"node1", 7};
  ha.backup_schedule = milliseconds(0);
  EXPECT_FALSE(decide(view, primary, ha, now).backup);
}

// The leader's agent reads the repository for its newest backup every kRepositoryReadEvery (so
// that backups taken by hand are seen), never while a backup runs here, only on the leader's
// running primary with backup: configured.
TEST(BackupSchedule, TheLeaderReadsTheRepositoryForItsLastBackup) {
  const std::int64_t every = 5 * 60 * 1000;
  struct Case {
    const char* what;
    std::optional<LastBackup> last;
    bool running;
    bool due;
  };
  std::vector<Case> cases = {
      {"never read", std::nullopt, false, true},
      {"read a moment ago", LastBackup{.checked_ms = kNow - 1000}, false, false},
      {"read just under five minutes ago", LastBackup{.checked_ms = kNow - every + 1}, false,
       false},
      {"read five minutes ago", LastBackup{.checked_ms = kNow - every}, false, true},
      {"due, but a backup runs here", std::nullopt, true, false},
  };
  HaConfig ha{.self = "node1", .backup_repository = true};
  ClusterView view{.initialized = true, .leader = LeaderRecord{"node1", 7}};
  view.members["node1"] = {.name = "node1", .state = PgState::kPrimary, .timeline = 1};
  std::chrono::steady_clock::time_point now{std::chrono::seconds(100)};
  for (const Case& each : cases) {
    view.last_backup = each.last;
    NodeObservation primary{.state = PgState::kPrimary, .timeline = 1};
    primary.wall_ms = kNow;
    primary.backup_running = each.running;
    EXPECT_EQ(decide(view, primary, ha, now).read_repository, each.due) << each.what;
  }
  view.last_backup.reset();
  NodeObservation standby{.state = PgState::kStandby, .timeline = 1, .upstream = "node1"};
  standby.wall_ms = kNow;
  EXPECT_FALSE(decide(view, standby, HaConfig{.self = "node2", .backup_repository = true}, now)
                   .read_repository);
  NodeObservation primary{.state = PgState::kPrimary, .timeline = 1};
  primary.wall_ms = kNow;
  EXPECT_FALSE(decide(view, primary, HaConfig{.self = "node1"}, now).read_repository)
      << "no backup: section";
}

}  // namespace
}  // namespace tandem
