// Backups and the WAL archive through pgBackRest (backup: in tandem.yaml): the stanza, checks,
// backups taken from a streaming standby, and what the repository holds. pgBackRest runs as the
// OS user with a node's pgbackrest.conf (pg/server_files.h), never with /etc/pgbackrest.conf.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "core/cluster_config.h"
#include "core/cluster_view.h"
#include "ops/context.h"
#include "proc/os_user.h"
#include "proc/process_runner.h"

namespace tandem {

// One backup in the repository (pgbackrest info).
struct BackupSet {
  std::string label;         // 20261204-221000F, 20261204-221000F_20261204-222000I
  std::string type;          // full, diff, incr
  std::int64_t started = 0;  // Unix seconds
  std::int64_t stopped = 0;
  std::string lsn_start;
  std::string lsn_stop;
  std::string wal_start;  // the first and last WAL segment it needs
  std::string wal_stop;
  std::int64_t size = 0;              // the database's size
  std::int64_t repository_size = 0;   // what it takes in the repository, with what it refers to
  std::int64_t repository_delta = 0;  // what this backup added to the repository
  bool error = false;                 // a page checksum error was found while copying
};

// What the repository holds for the stanza.
struct RepositoryInfo {
  int status_code = 0;  // pgBackRest's: 0 ok, 1 missing stanza path, 2 no valid backups, ...
  std::string status;   // its message
  std::vector<BackupSet> backups;  // oldest first
  std::string archive_min;         // the oldest and newest WAL segment archived ("" if none)
  std::string archive_max;
  std::vector<std::string> system_ids;  // of the databases the stanza was made for
  bool stanza_exists() const { return status_code != 1; }
};

// Parses `pgbackrest info --output=json` for `stanza`; an error when it is not that output.
Result<RepositoryInfo> parse_backrest_info(std::string_view json, const std::string& stanza);

// Where a running pgbackrest backup is, read from a line of its console log at level detail.
struct BackupProgress {
  enum class Phase {
    kCheckpoint,  // the backup starts after a checkpoint of the primary
    kCopying,     // `percent` of the files' bytes copied (or matched to the prior backup)
    kArchiving,   // stopped; waiting for the WAL it needs to reach the archive
    kDone,        // the backup is in the repository (expiry may follow)
  };
  Phase phase = Phase::kCheckpoint;
  double percent = 0;
};
// nullopt for a line that says nothing of progress.
std::optional<BackupProgress> parse_backup_progress(std::string_view line);
// "copying 42.5 %", "waiting for the primary's checkpoint", ...
std::string progress_text(const BackupProgress& progress);
// Progress thinned out to its steps, for a log: each phase, and each tenth of the copy.
class ProgressSteps {
 public:
  // The step `progress` reaches (the copy rounded down to its tenth), or nullopt when it
  // reaches none new.
  std::optional<BackupProgress> next(const BackupProgress& progress);

 private:
  std::optional<BackupProgress> last_;
};

enum class BackupType { kFull, kDiff, kIncr };
Result<BackupType> parse_backup_type(std::string_view text);
std::string_view backup_type_name(BackupType type);

// The repository must be an existing directory the OS user can write, and backup.pgbackrest a
// program: a clear error otherwise (tandem does not make the repository: a mistyped path would
// fill the wrong disk).
Status check_backup_repository(const ClusterConfig& config, const OsUser& os_user);

// A new cluster's stanza must not be in the repository yet: one there is another database's
// (a new cluster has a system identifier of its own), whose archive would refuse every WAL
// segment. Read before initdb, so that nothing is made (issue 18.6).
Status check_stanza_free(const ClusterConfig& config, ProcessRunner& runner);

// pgBackRest refuses a backup while the primary's last checkpoint is of an older timeline than
// its WAL ("WAL timeline 2 does not match pg_control timeline 1"): a freshly promoted primary's
// first checkpoint is a spread one. Found by BackupTest: the new primary's agent, taking again
// the backup a failover interrupted, failed so and lost the slot. Run before every backup: a
// checkpoint then, at once, and nothing otherwise.
Status checkpoint_after_promotion(const ClusterConfig& config, const NodeConfig& primary);

// pgBackRest's TLS server with the settings in `conf` (a node's pgbackrest.conf, or the
// repository host's), as the OS user, the password file at hand for its connections to the
// node's PostgreSQL.
ProcessSpec backrest_server_spec(const ClusterConfig& config, const std::string& conf);

// The repository host's pgBackRest settings (pg/server_files.h), in the repository.
std::string repository_conf_path(const ClusterConfig& config);
// Whether this machine is the repository host (it has its address).
bool on_repository_host(const ClusterConfig& config);
Status write_repository_conf(const ClusterConfig& config, const OsUser& os_user);

// pgBackRest for one cluster, run as its OS user.
class BackRest {
 public:
  // `here_is_repository_host`: whether it runs on the repository host (its settings, the nodes
  // named on command lines); left out, whether this machine has its address.
  BackRest(const ClusterConfig& config, ProcessRunner& runner,
           std::optional<bool> here_is_repository_host = std::nullopt);

  // Creates the stanza from the primary; run again, nothing to do — unless the stanza belongs to
  // another database: an error then.
  Status create_stanza(const NodeConfig& primary);
  // pgbackrest check on the primary: WAL reaches the archive (a WAL switch, then waits for it).
  Status check(const NodeConfig& primary);
  // A backup of `type`; from `standby` when given (the primary only starts and stops it).
  // `on_progress`, when given, hears where it is as it goes. Makes the stanza first when
  // pgBackRest says there is none. A failure because another pgBackRest process holds the
  // stanza's lock is kConflict. Callers run checkpoint_after_promotion before.
  Status backup(const NodeConfig& primary, const NodeConfig* standby, BackupType type,
                const std::function<void(const BackupProgress&)>& on_progress = {});
  Result<RepositoryInfo> info(const NodeConfig& node);
  // pgbackrest restore with `args` (the last one "restore"), with `node`'s settings.
  Status run_restore(const NodeConfig& node, std::vector<std::string> args);

 private:
  // The settings pgBackRest runs with: on the repository host its own, else `node`'s.
  std::string conf_of(const NodeConfig& node) const;
  // A backup is refused off the repository host, when there is one.
  Status need_repository_host() const;
  // pgbackrest --config=<conf_of(node)> --stanza=S args..., as the OS user; fails on a non-zero
  // exit with pgBackRest's own error line. `names_primary`: a command that reaches the primary
  // (`node`), named as pg1 on the repository host's command line.
  static constexpr bool kNamesThePrimary = true;
  Result<std::string> run(const NodeConfig& node, std::vector<std::string> args,
                          std::chrono::milliseconds timeout,
                          std::function<void(std::string_view)> on_line = {},
                          bool names_primary = false);

  const ClusterConfig& config_;
  ProcessRunner& runner_;
  bool here_is_repository_host_;
};

// The store's last_backup from what the repository holds (its newest backup, or none), read at
// `now_ms` (wall clock).
LastBackup last_backup_of(const RepositoryInfo& repository, std::int64_t now_ms);
// Writes it to the store: the leader's agent after reading the repository, `tandem backup`
// after a backup.
Status record_last_backup(const ClusterConfig& config, Clock& clock, const LastBackup& last);

// A node of this machine with its pgbackrest.conf (written with tandem.conf): pgBackRest runs
// with that one.
Result<const NodeConfig*> node_with_backrest_conf(const ClusterConfig& config);

// tandem restore: a copy of the cluster as it was at `target`, restored from the repository into
// a new data directory and started on its own port — never over the running cluster, and never
// archiving into its repository.
struct RestoreRequest {
  // "latest" (the archive's end, then promoted), "immediate" (the backup's end), an LSN
  // ("0/5000028") or a time PostgreSQL reads ("2026-12-04 22:30:00+00").
  std::string target = "latest";
  std::string dir;  // a new data directory (absent or empty)
  int port = 0;
  bool promote = false;  // at the target: promoted (a new primary of its own), else paused
  std::string set;       // a backup label to restore from; "": pgBackRest picks one
};
// What tandem restore passes pgBackRest for a target: --type=... and --target=... .
Result<std::vector<std::string>> restore_target_args(const RestoreRequest& request);
// Whether the repository can restore `request`: it has a backup, one that ended before a time
// target (`target_epoch`, Unix seconds, read by PostgreSQL) or an LSN target, the named set if
// any; a time not after `now_epoch` (the archive ends now). Refused with the earliest point it
// could restore to, before pgBackRest copies anything.
Status check_restore_target(const RestoreRequest& request, const RepositoryInfo& repository,
                            std::optional<double> target_epoch, double now_epoch);
// The restored copy as a node of no cluster: its own name, port and directory.
NodeConfig restored_node(const RestoreRequest& request);
// REQUIRES: context.runner. Returns once the copy is paused at its target or promoted.
Status restore_copy(Context& context, const RestoreRequest& request);

}  // namespace tandem
