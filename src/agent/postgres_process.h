// The agent's PostgreSQL as its own child process: started with `postgres -D`, watched through
// a pidfd so its exit is noticed at once, and tied to the agent's life — when the agent dies the
// kernel sends the postmaster SIGQUIT (PR_SET_PDEATHSIG), an immediate shutdown. That is the
// fence for a dead agent: without a watchdog, its PostgreSQL stops accepting writes within
// milliseconds, long before a standby may take the lease.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "core/cluster_config.h"
#include "pg/pg_binaries.h"
#include "pg/postmaster.h"
#include "proc/os_user.h"

namespace tandem {

class PostgresProcess {
 public:
  // `clock` gives stop() its deadline. REQUIRES: `clock` outlives this object.
  PostgresProcess(std::string log_file, PgBinaries binaries, OsUser os_user, Clock& clock)
      : log_file_(std::move(log_file)),
        binaries_(std::move(binaries)),
        os_user_(std::move(os_user)),
        clock_(clock) {}
  ~PostgresProcess();
  PostgresProcess(const PostgresProcess&) = delete;
  PostgresProcess& operator=(const PostgresProcess&) = delete;

  // Spawns the postmaster on the node's data directory; returns without waiting for it to
  // accept connections. REQUIRES: not running(); called from the thread that lives as long as
  // the agent (the death signal follows that thread).
  Status spawn(const NodeConfig& node);
  // Takes over a postmaster this process spawned through another PostgresProcess (the agent
  // built again when the members changed), as if spawned here. REQUIRES: not running(); `pid`
  // is this process's child.
  void adopt(pid_t pid);
  // Whether the child still runs; reaps it once it has exited.
  bool running();
  // Readable once the child exits; -1 when there is no child.
  int exit_fd() const { return pidfd_; }
  pid_t pid() const { return pid_; }
  // Signals the child (SIGINT fast shutdown, SIGQUIT immediate) and waits up to `timeout` for it
  // to exit; kills it after that. A no-op without a child.
  Status stop(bool immediate, std::chrono::milliseconds timeout);

 private:
  void forget();

  std::string log_file_;
  PgBinaries binaries_;
  OsUser os_user_;
  Clock& clock_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
};

}  // namespace tandem
