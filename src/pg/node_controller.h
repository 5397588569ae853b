// NodeController: the PostgreSQL programs run on one node's data directory. Each call runs
// one program to completion as the cluster's OS user and turns its failure into a one-line
// error. Decisions (whether to rewind, which node is primary) are made by the caller.
#pragma once

#include <chrono>
#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "core/cluster_config.h"
#include "pg/control_data.h"
#include "pg/pg_binaries.h"
#include "proc/os_user.h"
#include "proc/process_runner.h"

namespace tandem {

enum class StopMode { kFast, kImmediate };

struct RewindReport {
  std::string output;  // pg_rewind's
  // What tandem did with the target's own WAL around it (pg/rewind_wal.h): the segments it put
  // back, or why it could hold none; "" when there was nothing to say.
  std::string held_wal;
};

class NodeController {
 public:
  virtual ~NodeController() = default;

  // initdb with data checksums, UTF-8, no locale, the configured superuser.
  virtual Status initdb(const NodeConfig& node) = 0;
  // pg_ctl start, waiting until it accepts connections (read-only ones on a standby).
  virtual Status start(const NodeConfig& node) = 0;
  virtual Status stop(const NodeConfig& node, StopMode mode) = 0;
  // pg_ctl promote: the signal sent, not waiting for its end. promote_in_place in ops/ asks
  // through a session (pg_promote()) and comes here only without one; it polls for writes, and
  // for the postmaster's death.
  virtual Status promote(const NodeConfig& node) = 0;
  // Re-reads configuration files (pg_ctl reload).
  virtual Status reload(const NodeConfig& node) = 0;
  // Whether a postmaster runs on the data directory (pg_ctl status).
  virtual Result<bool> is_running(const NodeConfig& node) = 0;
  // pg_basebackup -X stream into the node's (absent or empty) data directory through `slot`.
  virtual Status base_backup(const NodeConfig& node, const std::string& source_conninfo,
                             const std::string& slot, bool create_slot) = 0;
  // pg_rewind the stopped node from a running source.
  virtual Result<RewindReport> rewind(const NodeConfig& node,
                                      const std::string& source_conninfo) = 0;
  virtual Result<ControlData> control_data(const NodeConfig& node) = 0;
  // Finishes crash recovery of a stopped, crashed node in single-user mode, leaving it cleanly
  // shut down; the same step pg_rewind would take, done first so tandem can read the WAL end.
  virtual Status finish_crash_recovery(const NodeConfig& node) = 0;
};

struct ControllerTimeouts {
  std::chrono::milliseconds start{std::chrono::seconds(60)};
  std::chrono::milliseconds stop{std::chrono::seconds(60)};
  std::chrono::milliseconds copy{std::chrono::hours(6)};  // base backup and rewind
};

// Runs the real programs from `binaries` through `runner`.
class PgNodeController final : public NodeController {
 public:
  // `os_user` runs the postmaster start() spawns; `clock` paces start()'s wait.
  PgNodeController(const ClusterConfig& config, PgBinaries binaries, ProcessRunner& runner,
                   OsUser os_user, Clock& clock, ControllerTimeouts timeouts = {})
      : config_(config),
        binaries_(std::move(binaries)),
        runner_(runner),
        os_user_(std::move(os_user)),
        clock_(clock),
        timeouts_(timeouts) {}

  Status initdb(const NodeConfig& node) override;
  Status start(const NodeConfig& node) override;
  Status stop(const NodeConfig& node, StopMode mode) override;
  Status promote(const NodeConfig& node) override;
  Status reload(const NodeConfig& node) override;
  Result<bool> is_running(const NodeConfig& node) override;
  Status base_backup(const NodeConfig& node, const std::string& source_conninfo,
                     const std::string& slot, bool create_slot) override;
  Result<RewindReport> rewind(const NodeConfig& node, const std::string& source_conninfo) override;
  Result<ControlData> control_data(const NodeConfig& node) override;
  // The same with a deadline of its own (the agent's cycle must not wait 30 s for it).
  Result<ControlData> control_data(const NodeConfig& node, std::chrono::milliseconds timeout);
  Status finish_crash_recovery(const NodeConfig& node) override;

  std::string log_file(const NodeConfig& node) const;

 private:
  // Runs a program as the OS user; a non-zero exit becomes an error quoting its last line.
  Result<std::string> run(std::string_view program, std::vector<std::string> args,
                          std::chrono::milliseconds timeout, bool progress_to_terminal = false);

  const ClusterConfig& config_;
  PgBinaries binaries_;
  ProcessRunner& runner_;
  OsUser os_user_;
  Clock& clock_;
  ControllerTimeouts timeouts_;
};

}  // namespace tandem
