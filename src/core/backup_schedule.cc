#include "core/backup_schedule.h"

namespace tandem {

bool repository_read_due(const std::optional<LastBackup>& last, std::int64_t now_ms) {
  return !last ||
         now_ms - last->checked_ms >=
             std::chrono::duration_cast<std::chrono::milliseconds>(kRepositoryReadEvery).count();
}

std::optional<ScheduledBackup> plan_scheduled_backup(std::chrono::milliseconds schedule,
                                                     std::chrono::milliseconds full_every,
                                                     const ClusterView& view,
                                                     const std::string& self, std::int64_t now_ms,
                                                     bool running_here, std::int64_t finished_ms) {
  const std::optional<BackupRecord>& record = view.backup;
  if (schedule.count() <= 0 || running_here || now_ms < 0) return std::nullopt;
  std::int64_t slot = now_ms - now_ms % schedule.count();
  // Written by a clock ahead of ours, or under a shorter schedule: its slot first.
  if (record && record->slot_ms > slot) return std::nullopt;
  if (finished_ms >= slot) return std::nullopt;  // ended here, its record perhaps not written
  if (record && record->slot_ms == slot) {
    if (record->state == "done") return std::nullopt;
    auto failed_retry = std::chrono::milliseconds(kBackupRetry);
    bool briefly_busy = record->state == "busy" && record->busy_since_ms > 0 &&
                        now_ms - record->busy_since_ms < failed_retry.count();
    auto retry = briefly_busy ? std::chrono::milliseconds(kBackupBusyRetry)
                 : record->state == "failed" || record->state == "busy"
                     ? failed_retry
                     : std::chrono::milliseconds(0);
    if (now_ms - record->at_ms < retry.count()) return std::nullopt;
    // "running": another node's, or this agent's before it restarted; either way none runs
    // here, and this node leads now.
  }
  std::int64_t last_full = record ? record->last_full_ms : 0;
  bool full = last_full == 0 || now_ms - last_full >= full_every.count();
  std::string from;
  auto leader = view.members.find(self);
  for (const auto& [name, member] : view.members) {
    bool streams = leader != view.members.end() && leader->second.primary &&
                   leader->second.primary->replay_lag_s.contains(name);
    if (name != self && member.state == PgState::kStandby && member.upstream == self && streams) {
      from = name;
      break;
    }
  }
  return ScheduledBackup{
      .slot_ms = slot, .type = full ? "full" : "incr", .from = from, .last_full_ms = last_full};
}

}  // namespace tandem
