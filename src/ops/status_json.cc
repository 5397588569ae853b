#include "ops/status_json.h"

namespace tandem {
namespace {

template <typename T, typename F>
nlohmann::json optional_json(const std::optional<T>& value, F convert) {
  return value ? nlohmann::json(convert(*value)) : nlohmann::json(nullptr);
}

nlohmann::json lsn_json(const std::optional<Lsn>& lsn) {
  return optional_json(lsn, [](Lsn value) { return value.str(); });
}

nlohmann::json time_json(const std::optional<WallTime>& time) {
  return optional_json(time, [](WallTime value) {
    return std::chrono::duration<double>(value.time_since_epoch()).count();
  });
}

nlohmann::json replication_json(const ReplicationRow& row) {
  auto identity = [](double value) { return value; };
  return {{"state", row.state},
          {"sent_lsn", lsn_json(row.sent)},
          {"write_lsn", lsn_json(row.write)},
          {"flush_lsn", lsn_json(row.flush)},
          {"replay_lsn", lsn_json(row.replay)},
          {"write_lag_seconds", optional_json(row.write_lag_s, identity)},
          {"flush_lag_seconds", optional_json(row.flush_lag_s, identity)},
          {"replay_lag_seconds", optional_json(row.replay_lag_s, identity)},
          {"sync_state", row.sync_state}};
}

}  // namespace

nlohmann::json archiver_to_json(const ArchiverRow& row) {
  return {{"archived_count", row.archived_count},
          {"last_archived_wal", row.last_archived_wal},
          {"last_archived_at", time_json(row.last_archived_at)},
          {"failed_count", row.failed_count},
          {"last_failed_wal", row.last_failed_wal},
          {"last_failed_at", time_json(row.last_failed_at)},
          {"failing", row.failing()}};
}

nlohmann::json last_backup_to_json(const LastBackup& last, std::int64_t now_ms) {
  bool any = last.stopped_s > 0;
  return {{"label", any ? nlohmann::json(last.label) : nlohmann::json(nullptr)},
          {"type", any ? nlohmann::json(last.type) : nlohmann::json(nullptr)},
          {"stopped_at", any ? nlohmann::json(last.stopped_s) : nlohmann::json(nullptr)},
          {"age_seconds",
           any ? nlohmann::json(std::max<std::int64_t>(0, now_ms / 1000 - last.stopped_s))
               : nlohmann::json(nullptr)},
          {"checked_at", last.checked_ms / 1000.0}};
}

nlohmann::json report_to_json(const ClusterReport& report, std::int64_t now_ms) {
  auto identity = [](auto value) { return value; };
  nlohmann::json nodes = nlohmann::json::array();
  for (const NodeReport& node : report.nodes) {
    nodes.push_back({{"name", node.name},
                     {"endpoint", node.endpoint},
                     {"role", role_name(node.role)},
                     {"detail", node.detail},
                     {"timeline", optional_json(node.timeline, identity)},
                     {"wal_lsn", lsn_json(node.wal_lsn)},
                     {"replay_lsn", lsn_json(node.replay_lsn)},
                     {"last_replay_at", time_json(node.last_replay_at)},
                     {"lag_bytes", optional_json(node.lag_bytes, identity)},
                     {"pending_restart", node.pending_restart},
                     {"replication", node.replication ? replication_json(*node.replication)
                                                      : nlohmann::json(nullptr)}});
  }
  nlohmann::json slots = nlohmann::json::array();
  for (const SlotRow& slot : report.slots) {
    slots.push_back({{"name", slot.name},
                     {"active", slot.active},
                     {"restart_lsn", lsn_json(slot.restart_lsn)},
                     {"wal_status", slot.wal_status},
                     {"retained_bytes", optional_json(slot.retained_bytes, identity)},
                     {"safe_wal_size", optional_json(slot.safe_wal_size, identity)},
                     {"inactive_since", time_json(slot.inactive_since)}});
  }
  nlohmann::json agents = nullptr;
  if (report.agents) {
    agents = {{"leader", report.agents->leader},
              {"paused", report.agents->paused},
              {"synchronous_mode", report.agents->synchronous_mode},
              // The first of sync_standbys, as one name, for readers of one standby.
              {"sync_standby", optional_json(report.agents->sync_standbys,
                                             [](const std::vector<std::string>& names) {
                                               return names.empty() ? std::string() : names.front();
                                             })},
              {"sync_standbys", optional_json(report.agents->sync_standbys, identity)},
              {"sync_quorum", optional_json(report.agents->sync_quorum, identity)},
              {"candidates", report.agents->candidates},
              {"not_eligible", report.agents->not_eligible},
              {"last_backup", report.agents->last_backup
                                  ? last_backup_to_json(*report.agents->last_backup, now_ms)
                                  : nlohmann::json(nullptr)}};
  }
  nlohmann::json archiver =
      report.archiver ? archiver_to_json(*report.archiver) : nlohmann::json(nullptr);
  return {{"primary", optional_json(report.primary, identity)},
          {"archiver", archiver},
          {"agents", agents},
          {"nodes", nodes},
          {"slots", slots},
          {"warnings", report.warnings}};
}

}  // namespace tandem
