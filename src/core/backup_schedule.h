// Scheduled backups (backup.schedule): which backup the leader's agent starts, and when. Time is
// cut into slots of `schedule` counted from the epoch, the same for every node; one backup per
// slot, recorded in the store (BackupRecord) when it starts and when it ends, so that a failover
// in the middle hands the slot to the new leader, which takes it again. Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "core/cluster_view.h"

namespace tandem {

struct ScheduledBackup {
  std::int64_t slot_ms = 0;       // when its slot began
  std::string type;               // "full" or "incr"
  std::string from;               // a standby streaming from the leader; "": the leader itself
  std::int64_t last_full_ms = 0;  // the record's, carried on
};

// A failed backup of the slot is tried again after this long (it may fail again at once: the
// repository full, the previous leader's still holding pgBackRest's lock).
inline constexpr std::chrono::seconds kBackupRetry{60};
// One refused because another pgBackRest process held the stanza's lock ("busy": the backup of
// a node that led before a failover, still ending) is tried again sooner: the lock goes when
// that process ends, and the slot may be short (found by BackupTest: a crash in the middle of a
// 45 s slot's backup, whose retry a minute later fell in the next slot). Busy for kBackupRetry,
// it is tried as a failed one is (a backup by hand of hours holds the lock as long).
inline constexpr std::chrono::seconds kBackupBusyRetry{5};

// How often the leader's agent reads the repository for its newest backup (last_backup), so
// that backups taken by hand or by a cron job are seen too.
inline constexpr std::chrono::minutes kRepositoryReadEvery{5};
// Whether that read is due at `now_ms`: never read, or read kRepositoryReadEvery ago.
bool repository_read_due(const std::optional<LastBackup>& last, std::int64_t now_ms);

// The backup the leader starts now (`now_ms`, wall clock), if any: none without a
// schedule or while one runs here; none when the slot's is done, or failed less than
// kBackupRetry ago (kBackupBusyRetry when it was "busy"); the slot's again when another node
// started it (a failover since) or this agent did and neither runs nor ended one (it restarted;
// `finished_ms`: the slot of the last it ended, whose record may not have been written). Full when
// the schedule has taken no full one yet or its last is `full_every` old, else incremental. From
// the first standby (by name) the primary sees streaming (pg_stat_replication, in its own record),
// to spare the primary; from the leader when none does.
std::optional<ScheduledBackup> plan_scheduled_backup(std::chrono::milliseconds schedule,
                                                     std::chrono::milliseconds full_every,
                                                     const ClusterView& view,
                                                     const std::string& self, std::int64_t now_ms,
                                                     bool running_here,
                                                     std::int64_t finished_ms = 0);

}  // namespace tandem
