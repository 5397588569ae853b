// What a running server says about itself over SQL: primary or standby, its timeline and WAL
// positions, its last checkpoint, and whether it takes writes.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/cluster_settings.h"
#include "core/lsn.h"
#include "core/status_report.h"
#include "core/timeline.h"
#include "pg/connection.h"

namespace tandem {

// True for a standby (a server in recovery), false for a primary.
Result<bool> is_in_recovery(Connection& connection);

// The newest timeline a standby knows of: received from its primary, in its last checkpoint, or
// announced by a history file in its pg_wal (its promotion creates the next one).
Result<TimelineId> standby_timeline(Connection& connection);

// The timeline a primary writes on; kConflict while the server is still in recovery.
Result<TimelineId> primary_timeline(Connection& connection);

// The timeline of the WAL a primary writes; nullopt when the query fails (a standby).
std::optional<TimelineId> writing_timeline(Connection& connection);

// Where a server restored from a backup is: still replaying, paused at its recovery target, or
// promoted (out of recovery); with the last transaction it replayed or wrote.
enum class RecoveryProgress { kReplaying, kPaused, kPromoted };
struct RecoveryState {
  RecoveryProgress progress = RecoveryProgress::kReplaying;
  std::optional<Lsn> replayed;   // pg_last_wal_replay_lsn(), in recovery
  std::string last_commit_time;  // of the last transaction replayed ("" when none or promoted)
};
Result<RecoveryState> recovery_state(Connection& connection);

// pg_stat_archiver of a server.
Result<ArchiverRow> archiver_stats(Connection& connection);
// A time as PostgreSQL reads it ("2026-12-04 22:30:00+00", "yesterday"...), in Unix seconds;
// PostgreSQL's own error for one it cannot read.
Result<double> epoch_of(Connection& connection, const std::string& time);

// The timeline a standby's WAL receiver streams; nullopt when it does not stream.
std::optional<TimelineId> streaming_timeline(Connection& connection);

// The end of the WAL a standby has received and flushed (or replayed, if further).
std::optional<Lsn> received_wal(Connection& connection);

// Asks a standby to promote (pg_promote without waiting), as `pg_ctl promote --no-wait` does;
// fails on a server not in recovery.
Status request_promotion(Connection& connection);

// Succeeds once the server assigns transaction ids: it has left recovery and takes writes.
Status check_writable(Connection& connection);

// Runs a CHECKPOINT.
Status checkpoint(Connection& connection);
// Runs a CHECKPOINT, waiting for it `limit` at most (statement_timeout, reset afterwards); the
// server's checkpointer goes on with one that outlasts it.
Status checkpoint_within(Connection& connection, std::chrono::milliseconds limit);

struct CheckpointWal {
  TimelineId timeline = 0;  // of the last checkpoint (pg_control)
  Lsn wal_end;              // where the primary's WAL ends now
};
// REQUIRES: a primary.
Result<CheckpointWal> checkpoint_wal(Connection& connection);

// The content of a file in the server's pg_wal (a timeline history file).
Result<std::string> read_wal_file(Connection& connection, const std::string& file_name);

// Where a primary's WAL ends and the timeline it writes on.
struct PrimaryPosition {
  std::optional<Lsn> wal_lsn;
  TimelineId timeline = 0;
};
Result<PrimaryPosition> primary_position(Connection& connection);

// How far a standby has received and replayed, and from which port it streams.
struct StandbyPosition {
  std::optional<Lsn> received;
  std::optional<Lsn> replayed;
  std::optional<WallTime> replayed_at;  // commit time of the last transaction replayed
  std::optional<TimelineId> timeline;   // received, or of its last checkpoint
  std::optional<int> sender_port;       // the port of the server it streams from, if it does
};
Result<StandbyPosition> standby_position(Connection& connection);

// The settings whose new value waits for a restart (pg_settings.pending_restart).
Result<std::vector<std::string>> pending_restart(Connection& connection);

// What pg_settings says of `name`: its type, context, unit, range and values; nullopt when the
// server knows no such setting.
Result<std::optional<SettingDefinition>> setting_definition(Connection& connection,
                                                            const std::string& name);

// The lines of the server's configuration files it could not apply (pg_file_settings.error):
// "file:line name: error". A setting that waits for a restart is not among them, whether its
// new value is good or not: PostgreSQL tells them apart only when it starts.
Result<std::vector<std::string>> configuration_errors(Connection& connection);

// Removes primary_conninfo and primary_slot_name from postgresql.auto.conf (pg_basebackup -R
// puts them there, where they would override tandem.conf), then reloads the configuration.
Status reset_upstream_settings(Connection& connection);

}  // namespace tandem
