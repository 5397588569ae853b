// Scheduled backups: which one the leader's agent starts, and when (core/backup_schedule.h).
#include "core/backup_schedule.h"

#include <gtest/gtest.h>

#include "core/cluster_config.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kHour{3'600'000};
constexpr milliseconds kWeek{7 * 24 * 3'600'000LL};
// 10:30 on some day: slot 10 of that day's hours, counted from the epoch.
constexpr std::int64_t kNow = 1'000 * kHour.count() + kHour.count() / 2;

TEST(BackupSchedule, OneBackupPerSlotTakenAgainAfterAFailoverOrAFailure) {
  ClusterView view;
  view.members["node1"] = {.name = "node1", .state = PgState::kPrimary};
  view.members["node2"] = {.name = "node2", .state = PgState::kStandby, .upstream = "node1"};
  view.members["node3"] = {.name = "node3", .state = PgState::kStandby, .upstream = "node1"};
  const std::uint64_t slot = 1000;
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
       BackupRecord{slot - 1, "done", "node1", "incr", kNow - kHour.count(), kNow - 86'400'000},
       false, "incr"},
      {"last full a week ago: full",
       BackupRecord{slot - 1, "done", "node1", "incr", kNow - kHour.count(), week_ago}, false,
       "full"},
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
      {"a record from a clock ahead", BackupRecord{slot + 1, "done", "node2", "incr", kNow, 0},
       false, nullptr},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    view.backup = each.record;
    auto planned = plan_scheduled_backup(kHour, kWeek, view, "node1", kNow, each.running_here);
    if (each.type == nullptr) {
      EXPECT_FALSE(planned) << planned->type;
      continue;
    }
    ASSERT_TRUE(planned);
    EXPECT_EQ(planned->type, each.type);
    EXPECT_EQ(planned->slot, slot);
    EXPECT_EQ(planned->from, "node2") << "from the first streaming standby";
    EXPECT_EQ(planned->last_full_ms, each.record ? each.record->last_full_ms : 0);
  }
  EXPECT_FALSE(plan_scheduled_backup(milliseconds(0), kWeek, view, "node1", kNow, false))
      << "no schedule";
  view.backup.reset();
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

}  // namespace
}  // namespace tandem
