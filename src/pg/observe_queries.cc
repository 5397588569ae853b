#include "pg/observe_queries.h"

#include "pg/query_values.h"
#include "pg/server_queries.h"

namespace tandem {
namespace {

constexpr char kObserve[] =
    "SELECT pg_is_in_recovery()::text AS in_recovery, "
    // What a standby holds: a WAL receiver that (re)starts reports the start of the segment it
    // asks for, which may be far below what the standby has replayed; one that never streamed
    // (a former primary started read-only) reports nothing. Elections compare this.
    "CASE WHEN pg_is_in_recovery() THEN "
    "       greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text "
    "     ELSE pg_current_wal_lsn()::text END AS received, "
    "pg_last_wal_replay_lsn()::text AS replayed, "
    "(SELECT status FROM pg_stat_wal_receiver) AS receiver, "
    // Where a receiver flushed, or, after a start with none since, replay at the end of every
    // source it has (its startup process waits to try them again): `received` is then all of it.
    "CASE WHEN pg_last_wal_receive_lsn() IS NOT NULL THEN true "
    "     WHEN pg_is_in_recovery() THEN EXISTS (SELECT 1 FROM pg_stat_activity "
    "       WHERE backend_type = 'startup' AND wait_event = 'RecoveryRetrieveRetryInterval') "
    "     ELSE false END::text AS receive_known, "
    "current_setting('primary_conninfo') AS conninfo, "
    // A standby's timeline: the newest it knows of. pg_control lags behind replay and the WAL
    // receiver's row vanishes with its primary, but a switch leaves the history file in pg_wal.
    "CASE WHEN pg_is_in_recovery() THEN greatest("
    "       (SELECT received_tli FROM pg_stat_wal_receiver), "
    "       (SELECT timeline_id FROM pg_control_checkpoint()), "
    "       (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir() "
    "        WHERE name ~ '^[0-9A-F]{8}[.]history$')) "
    "     ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int "
    "END AS timeline, "
    // What a cycle at rest needs to know the answer still stands (core/observe_rest.h): the
    // timeline the WAL is written on now, the segment size, and whether no WAL is in flight —
    // a primary's inserted WAL all flushed, a standby's received WAL all flushed and replayed.
    "CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver) "
    "     ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int "
    "END AS write_timeline, "
    "(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS segment_bytes, "
    "CASE WHEN pg_is_in_recovery() THEN "
    "       coalesce((SELECT written_lsn = flushed_lsn FROM pg_stat_wal_receiver), false) "
    "       AND pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() "
    "     ELSE pg_current_wal_insert_lsn() = pg_current_wal_flush_lsn() "
    "END::text AS wal_settled";

constexpr char kPrimaryDetails[] =
    "SELECT 'slot' AS kind, slot_name::text AS name, active::text AS active, wal_status, "
    "       (pg_current_wal_lsn() - restart_lsn)::bigint::text AS value "
    "FROM pg_replication_slots WHERE slot_type = 'physical' "
    "UNION ALL "
    "SELECT 'lag', application_name, NULL, NULL, "
    "       coalesce(extract(epoch FROM replay_lag), 0)::text "
    "FROM pg_stat_replication ORDER BY 1, 2";

}  // namespace

Result<ServerObservation> observe_server(Connection& connection) {
  auto rows = connection.query(kObserve);
  if (!rows) return std::unexpected(rows.error());
  ServerObservation server{.standby = rows->text(0, "in_recovery") == "true",
                           .received = lsn_of(*rows, 0, "received"),
                           .replayed = lsn_of(*rows, 0, "replayed"),
                           .receiver_streaming = rows->text(0, "receiver") == "streaming",
                           .receiver_present = rows->get(0, "receiver").has_value(),
                           .receive_position_known = rows->text(0, "receive_known") == "true",
                           .primary_conninfo = rows->text(0, "conninfo")};
  if (auto timeline = rows->get(0, "timeline"))
    server.timeline = static_cast<TimelineId>(std::stoul(*timeline));
  if (auto timeline = rows->get(0, "write_timeline"))
    server.write_timeline = static_cast<TimelineId>(std::stoul(*timeline));
  if (auto bytes = rows->get(0, "segment_bytes")) server.segment_bytes = std::stoull(*bytes);
  server.wal_settled = rows->text(0, "wal_settled") == "true";
  return server;
}

Result<PrimaryDetails> read_primary_details(Connection& connection) {
  auto rows = connection.query(kPrimaryDetails);
  if (!rows) return std::unexpected(rows.error());
  PrimaryDetails details;
  for (std::size_t row = 0; row < rows->size(); ++row) {
    const auto& value = rows->get(row, "value");
    if (rows->text(row, "kind") == "slot") {
      details.slots.push_back(
          {.name = rows->text(row, "name"),
           .active = rows->text(row, "active") == "true",
           .wal_status = rows->text(row, "wal_status"),
           .retained_bytes = value ? std::optional(std::stoll(*value)) : std::nullopt});
    } else if (value) {
      details.replay_lag_s[rows->text(row, "name")] = std::stod(*value);
    }
  }
  if (auto archiver = archiver_stats(connection);
      archiver && (archiver->archived_count > 0 || archiver->failed_count > 0)) {
    details.archiver = *archiver;
  }
  return details;
}

}  // namespace tandem
