#include "pg/replication_queries.h"

#include "pg/query_values.h"

namespace tandem {

Result<std::optional<std::string>> replication_state(Connection& primary,
                                                     const std::string& application_name) {
  auto rows = primary.query("SELECT state FROM pg_stat_replication WHERE application_name = $1",
                            {application_name});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return std::optional<std::string>();
  return std::optional(rows->text(0, "state"));
}

Result<bool> streams_to(Connection& primary, const std::string& application_name) {
  auto rows = primary.query(
      "SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'",
      {application_name});
  if (!rows) return std::unexpected(rows.error());
  return !rows->empty();
}

Result<std::vector<ReplicationRow>> replication_rows(Connection& primary) {
  auto result = primary.query(
      "SELECT application_name, state, sent_lsn, write_lsn, flush_lsn, replay_lsn, "
      "extract(epoch FROM write_lag) AS write_lag, extract(epoch FROM flush_lag) AS flush_lag, "
      "extract(epoch FROM replay_lag) AS replay_lag, sync_state FROM pg_stat_replication");
  if (!result) return std::unexpected(result.error());
  std::vector<ReplicationRow> rows;
  for (std::size_t row = 0; row < result->size(); ++row) {
    rows.push_back({.application_name = result->text(row, "application_name"),
                    .state = result->text(row, "state"),
                    .sent = lsn_of(*result, row, "sent_lsn"),
                    .write = lsn_of(*result, row, "write_lsn"),
                    .flush = lsn_of(*result, row, "flush_lsn"),
                    .replay = lsn_of(*result, row, "replay_lsn"),
                    .write_lag_s = number_of(*result, row, "write_lag"),
                    .flush_lag_s = number_of(*result, row, "flush_lag"),
                    .replay_lag_s = number_of(*result, row, "replay_lag"),
                    .sync_state = result->text(row, "sync_state")});
  }
  return rows;
}

Result<SynchronousReplication> read_synchronous_replication(Connection& primary) {
  // The last row stands for the primary itself: its WAL end and setting come even when no
  // standby streams.
  auto rows = primary.query(
      "SELECT application_name, flush_lsn::text AS flush, sync_state, "
      "pg_current_wal_lsn()::text AS current, current_setting('synchronous_standby_names') "
      "AS configured, NULL::boolean AS waiting FROM pg_stat_replication "
      "WHERE state = 'streaming' "
      "UNION ALL SELECT NULL, NULL, NULL, pg_current_wal_lsn()::text, "
      "current_setting('synchronous_standby_names'), "
      "EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep')");
  if (!rows) return std::unexpected(rows.error());
  SynchronousReplication replication;
  for (std::size_t row = 0; row < rows->size(); ++row) {
    replication.current_wal =
        Lsn::parse(rows->text(row, "current")).value_or(replication.current_wal);
    if (row == 0) replication.standby_names = rows->text(row, "configured");
    if (!rows->get(row, "application_name")) {
      replication.commits_waiting = rows->text(row, "waiting") == "t";
      continue;
    }
    replication.standbys.push_back({.application_name = rows->text(row, "application_name"),
                                    .flush = lsn_of(*rows, row, "flush"),
                                    .synchronous = rows->text(row, "sync_state") == "sync",
                                    .quorum = rows->text(row, "sync_state") == "quorum"});
  }
  return replication;
}

}  // namespace tandem
