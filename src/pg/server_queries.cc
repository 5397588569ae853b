#include "pg/server_queries.h"

#include <fmt/format.h>

#include "pg/query_values.h"

namespace tandem {
namespace {

std::optional<TimelineId> timeline_of(const QueryResult& rows, std::string_view column) {
  if (rows.empty()) return std::nullopt;
  const auto& value = rows.get(0, column);
  if (!value) return std::nullopt;
  return static_cast<TimelineId>(std::stoul(*value));
}

}  // namespace

Result<bool> is_in_recovery(Connection& connection) {
  auto rows = connection.query("SELECT pg_is_in_recovery() AS in_recovery");
  if (!rows) return std::unexpected(rows.error());
  return rows->text(0, "in_recovery") == "t";
}

Result<TimelineId> standby_timeline(Connection& connection) {
  auto rows = connection.query(
      "SELECT greatest((SELECT received_tli FROM pg_stat_wal_receiver), "
      "       (SELECT timeline_id FROM pg_control_checkpoint()), "
      "       (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir() "
      "        WHERE name ~ '^[0-9A-F]{8}[.]history$'))::text AS tli");
  if (!rows) return std::unexpected(rows.error());
  return static_cast<TimelineId>(std::stoul(rows->text(0, "tli")));
}

Result<TimelineId> primary_timeline(Connection& connection) {
  auto rows = connection.query(
      "SELECT pg_is_in_recovery()::text AS recovery, CASE WHEN NOT pg_is_in_recovery() THEN "
      "(('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int)::text END "
      "AS tli");
  if (!rows) return std::unexpected(rows.error());
  if (rows->text(0, "recovery") == "true") {
    return fail(ErrorCode::kConflict, "the server is still in recovery: it takes no writes");
  }
  return static_cast<TimelineId>(std::stoul(rows->text(0, "tli")));
}

std::optional<TimelineId> writing_timeline(Connection& connection) {
  auto rows = connection.query(
      "SELECT (('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))"
      "::bit(32)::int)::text AS tli");
  if (!rows) return std::nullopt;
  return timeline_of(*rows, "tli");
}

Result<RecoveryState> recovery_state(Connection& connection) {
  auto rows = connection.query(
      "SELECT pg_is_in_recovery()::text AS recovery, "
      "CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS pause, "
      "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END AS replayed, "
      "CASE WHEN pg_is_in_recovery() THEN pg_last_xact_replay_timestamp()::text END AS commit");
  if (!rows) return std::unexpected(rows.error());
  RecoveryState state;
  if (rows->text(0, "recovery") != "true") {
    state.progress = RecoveryProgress::kPromoted;
    return state;
  }
  state.progress =
      rows->text(0, "pause") == "paused" ? RecoveryProgress::kPaused : RecoveryProgress::kReplaying;
  if (const auto& replayed = rows->get(0, "replayed")) {
    if (auto lsn = Lsn::parse(*replayed)) state.replayed = *lsn;
  }
  state.last_commit_time = rows->get(0, "commit").value_or("");
  return state;
}

Result<ArchiverRow> archiver_stats(Connection& connection) {
  auto rows = connection.query(
      "SELECT archived_count, last_archived_wal, "
      "(extract(epoch FROM last_archived_time) * 1000)::bigint AS archived_ms, failed_count, "
      "last_failed_wal, (extract(epoch FROM last_failed_time) * 1000)::bigint AS failed_ms "
      "FROM pg_stat_archiver");
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return fail(ErrorCode::kNotFound, "pg_stat_archiver has no row");
  auto wall = [&](std::string_view column) -> std::optional<WallTime> {
    auto ms = number_of(*rows, 0, column);
    if (!ms) return std::nullopt;
    return WallTime(std::chrono::milliseconds(static_cast<std::int64_t>(*ms)));
  };
  return ArchiverRow{
      .archived_count =
          static_cast<std::int64_t>(number_of(*rows, 0, "archived_count").value_or(0)),
      .last_archived_wal = rows->text(0, "last_archived_wal"),
      .last_archived_at = wall("archived_ms"),
      .failed_count = static_cast<std::int64_t>(number_of(*rows, 0, "failed_count").value_or(0)),
      .last_failed_wal = rows->text(0, "last_failed_wal"),
      .last_failed_at = wall("failed_ms")};
}

Result<double> epoch_of(Connection& connection, const std::string& time) {
  auto rows = connection.query("SELECT extract(epoch FROM $1::timestamptz)::text AS v", {time});
  if (!rows) return std::unexpected(rows.error());
  auto value = number_of(*rows, 0, "v");
  if (!value) return fail(ErrorCode::kInvalidArgument, "not a time: " + time);
  return *value;
}

std::optional<TimelineId> streaming_timeline(Connection& connection) {
  auto rows = connection.query(
      "SELECT received_tli::text AS tli FROM pg_stat_wal_receiver "
      "WHERE status = 'streaming'");
  if (!rows) return std::nullopt;
  return timeline_of(*rows, "tli");
}

std::optional<Lsn> received_wal(Connection& connection) {
  auto rows = connection.query(
      "SELECT greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text AS lsn");
  if (!rows) return std::nullopt;
  return lsn_of(*rows, 0, "lsn");
}

Status request_promotion(Connection& connection) {
  auto rows = connection.query("SELECT pg_promote(wait => false)::text AS signalled");
  if (!rows) return std::unexpected(rows.error());
  if (rows->text(0, "signalled") != "true") {
    return fail(ErrorCode::kFailed, "pg_promote() did not signal the postmaster");
  }
  return {};
}

Status check_writable(Connection& connection) {
  // Rolled back: a commit may wait for a synchronous standby (strict mode waits for any, and a
  // freshly promoted primary may have none yet), an abort never does.
  Status assigned = connection.execute("BEGIN; SELECT pg_current_xact_id()");
  (void)connection.execute("ROLLBACK");  // the connection usable again, whatever happened
  return assigned;
}

Status checkpoint(Connection& connection) { return connection.execute("CHECKPOINT"); }

Status checkpoint_within(Connection& connection, std::chrono::milliseconds limit) {
  if (auto ok = connection.execute(fmt::format("SET statement_timeout = {}", limit.count())); !ok) {
    return ok;
  }
  Status done = connection.execute("CHECKPOINT");
  (void)connection.execute("RESET statement_timeout");  // the session's own setting again
  return done;
}

Result<CheckpointWal> checkpoint_wal(Connection& connection) {
  auto rows = connection.query(
      "SELECT timeline_id, pg_current_wal_lsn() AS wal_end FROM pg_control_checkpoint()");
  if (!rows) return std::unexpected(rows.error());
  auto timeline = static_cast<TimelineId>(std::stoul(rows->text(0, "timeline_id")));
  auto end = Lsn::parse(rows->text(0, "wal_end"));
  if (!end) return std::unexpected(end.error());
  return CheckpointWal{timeline, *end};
}

Result<std::string> read_wal_file(Connection& connection, const std::string& file_name) {
  auto file = connection.query("SELECT pg_read_file('pg_wal/' || $1) AS content", {file_name});
  if (!file) return std::unexpected(file.error());
  return file->text(0, "content");
}

Result<PrimaryPosition> primary_position(Connection& connection) {
  auto self = connection.query(
      "SELECT pg_current_wal_lsn() AS lsn, "
      "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS timeline");
  if (!self) return std::unexpected(self.error());
  return PrimaryPosition{
      .wal_lsn = lsn_of(*self, 0, "lsn"),
      .timeline = static_cast<TimelineId>(std::stoul(self->text(0, "timeline")))};
}

Result<StandbyPosition> standby_position(Connection& connection) {
  auto rows = connection.query(
      "SELECT pg_last_wal_receive_lsn() AS received, pg_last_wal_replay_lsn() AS replayed, "
      "extract(epoch FROM pg_last_xact_replay_timestamp()) AS replayed_at, "
      "coalesce((SELECT received_tli FROM pg_stat_wal_receiver), "
      "(SELECT timeline_id FROM pg_control_checkpoint())) AS timeline, "
      "(SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming') AS sender_port");
  if (!rows) return std::unexpected(rows.error());
  const auto& sender_port = rows->get(0, "sender_port");
  return StandbyPosition{
      .received = lsn_of(*rows, 0, "received"),
      .replayed = lsn_of(*rows, 0, "replayed"),
      .replayed_at = time_of(*rows, 0, "replayed_at"),
      .timeline = timeline_of(*rows, "timeline"),
      .sender_port = sender_port ? std::optional(std::stoi(*sender_port)) : std::nullopt};
}

Result<std::vector<std::string>> pending_restart(Connection& connection) {
  auto rows = connection.query("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name");
  if (!rows) return std::unexpected(rows.error());
  std::vector<std::string> names;
  for (std::size_t row = 0; row < rows->size(); ++row) names.push_back(rows->text(row, "name"));
  return names;
}

Result<std::optional<SettingDefinition>> setting_definition(Connection& connection,
                                                            const std::string& name) {
  auto rows = connection.query(
      "SELECT name, vartype, context, coalesce(unit, '') AS unit, min_val, max_val, "
      "array_to_string(enumvals, E'\\n') AS enumvals FROM pg_settings WHERE lower(name) = "
      "lower($1)",
      {name});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return std::optional<SettingDefinition>();
  SettingDefinition definition{.name = rows->text(0, "name"),
                               .vartype = rows->text(0, "vartype"),
                               .context = rows->text(0, "context"),
                               .unit = rows->text(0, "unit")};
  if (const auto& min = rows->get(0, "min_val")) definition.min = std::stod(*min);
  if (const auto& max = rows->get(0, "max_val")) definition.max = std::stod(*max);
  std::string choices = rows->text(0, "enumvals");
  for (std::size_t start = 0; !choices.empty() && start <= choices.size();) {
    std::size_t end = choices.find('\n', start);
    if (end == std::string::npos) end = choices.size();
    definition.enumvals.push_back(choices.substr(start, end - start));
    start = end + 1;
  }
  return std::optional(std::move(definition));
}

Result<std::vector<std::string>> configuration_errors(Connection& connection) {
  // A new value of a setting that needs a restart reads "setting could not be applied" too: that
  // one is pending_restart's to tell, not an error (PostgreSQL says no more of either).
  auto rows = connection.query(
      "SELECT f.sourcefile || ':' || f.sourceline || ' ' || coalesce(f.name, '') || ': ' || "
      "f.error AS line FROM pg_file_settings f LEFT JOIN pg_settings s ON lower(s.name) = "
      "lower(f.name) WHERE f.error IS NOT NULL AND (s.context IS DISTINCT FROM 'postmaster' OR "
      "f.error <> 'setting could not be applied') ORDER BY f.seqno");
  if (!rows) return std::unexpected(rows.error());
  std::vector<std::string> lines;
  for (std::size_t row = 0; row < rows->size(); ++row) lines.push_back(rows->text(row, "line"));
  return lines;
}

Status reset_upstream_settings(Connection& connection) {
  // ALTER SYSTEM cannot run inside a transaction block: one statement at a time.
  for (const char* sql : {"ALTER SYSTEM RESET primary_conninfo",
                          "ALTER SYSTEM RESET primary_slot_name", "SELECT pg_reload_conf()"}) {
    if (auto ok = connection.execute(sql); !ok) return ok;
  }
  return {};
}

}  // namespace tandem
