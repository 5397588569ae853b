// Scheduled backups (Decision::backup) carried out beside the agent's cycle: one at a time, on a
// thread of their own, pgBackRest run as the OS user; the store's `backup` record says when the
// slot's backup started and how it ended (core/backup_schedule.h). A cycle never waits for one,
// nor does a failover.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "core/backup_schedule.h"
#include "core/cluster_config.h"

namespace tandem {

class BackupRunner {
 public:
  // Everything the runner uses is its own — the config, a clock, a store connection per write
  // of the record, the process runner: a backup under way outlives the agent (see the
  // destructor).
  BackupRunner(ClusterConfig config, std::string self);
  // A backup under way is left to finish on its thread, which holds all it uses; the agent's
  // process ends it if it exits first (pgBackRest then stops too), its record still "running":
  // the next leader, or this agent started again, takes the slot again.
  ~BackupRunner();
  BackupRunner(const BackupRunner&) = delete;
  BackupRunner& operator=(const BackupRunner&) = delete;

  bool running() const;
  // The slot (its start) of the last backup this runner took to the end; 0: none.
  std::int64_t finished_ms() const;
  // Starts `backup` of `primary`, from `standby` when given, unless one runs; returns at once.
  void start(const ScheduledBackup& backup, const NodeConfig& primary,
             const std::optional<NodeConfig>& standby);
  // Reads the repository (pgbackrest info with `self`'s settings) for its newest backup and
  // writes it to the store's last_backup, on the runner's thread, unless a backup or a read
  // runs or one was tried less than a minute ago (a broken repository is not read every cycle).
  void read_repository(const NodeConfig& self);
  // Before `self`, a standby, is promoted: what it received that the old primary may not have
  // archived (after `archived`, its last archived segment as last seen) marked for its own
  // archiver (ops mark_received_wal), at once, on the caller's thread (a directory read and
  // one short process); logged.
  void mark_received_wal(const NodeConfig& self, const std::string& archived);

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
};

}  // namespace tandem
