// PgLocalNode: the LocalNode of a real PostgreSQL. The postmaster is the agent's supervised
// child (PostgresProcess); initdb, pg_basebackup, pg_rewind and pg_ctl run as the OS user; the
// cluster operations of ops/ (init, clone, promote, rejoin) are the very ones the CLI runs.
#pragma once

#include <optional>
#include <string>

#include "agent/agent_node_controller.h"
#include "agent/local_node.h"
#include "agent/node_observer.h"
#include "agent/postgres_process.h"
#include "agent/sync_manager.h"
#include "dcs/cluster_layout.h"
#include "dcs/store.h"
#include "ops/context.h"
#include "pg/pg_binaries.h"

namespace tandem {

class PgLocalNode final : public LocalNode {
 public:
  // REQUIRES: `self` names a node of `config`; everything passed outlives this object.
  PgLocalNode(const ClusterConfig& config, const NodeConfig& self, const OsUser& os_user,
              const PgBinaries& binaries, ProcessRunner& runner, Store& store, Clock& clock);

  NodeObservation observe(bool at_rest) override;
  std::optional<PrimaryDetails> primary_details() override { return observer_.primary_details(); }
  Status initialize() override;
  Status clone(const std::string& leader) override;
  Status start_primary(const std::function<Status()>& may_spawn,
                       const std::vector<std::string>& synchronous_standbys) override;
  Status start_standby(const std::string& leader) override;
  Status follow(const std::string& leader) override;
  Result<Promotion> promote(TimelineId target) override;
  bool switched_to(TimelineId timeline) override;
  Status stop(StopMode mode) override { return controller_.stop(self_, mode); }
  Status checkpoint(std::chrono::milliseconds limit) override;
  Status restart(const std::function<Status()>& stopped,
                 const std::function<void()>& spawned) override;
  Status rejoin() override;
  Status reclone(const std::string& leader) override;
  Result<Lsn> shutdown_checkpoint() override;
  pid_t postmaster() const override { return process_.pid() > 0 ? process_.pid() : 0; }
  void wait_for_exit(std::chrono::milliseconds timeout, int wake_fd) override;
  ~PgLocalNode() override;
  PgLocalNode(const PgLocalNode&) = delete;
  PgLocalNode& operator=(const PgLocalNode&) = delete;
  void fence_others(const std::string& claimant) override;
  Result<std::string> update_sync(const ClusterView& view) override { return sync_.update(view); }
  void reset_sync() override { sync_.reset(); }
  Status apply_settings(const ClusterSettings& settings) override;

  // The postmaster another PgLocalNode of this process spawned (see PostgresProcess::adopt).
  void adopt_postmaster(pid_t pid) { process_.adopt(pid); }

  // The lines the operations report, one per step, go here (the agent's log by default).
  Context& context() { return context_; }

 private:
  // A superuser session with the server: the observations' own while it stands (`may_borrow`),
  // else one opened into `own`.
  Result<Connection*> admin_session(std::optional<Connection>& own, bool may_borrow);
  const NodeConfig* node(const std::string& name) const;
  Result<const NodeConfig*> leader_node(const std::string& name) const;
  void fence_primary(const NodeConfig& other);
  void await_wal_of(const NodeConfig& other);
  // An inotify descriptor on the data directory's removals (-1 if none can be had), and the
  // events read off it: a sleep that can be woken ends when standby.signal goes (a promotion,
  // by hand or not), not when it would have.
  int removal_watch();
  void drain_removals();

  const ClusterConfig& config_;
  const NodeConfig& self_;
  Clock& clock_;
  ClusterLayout layout_;
  PgNodeController programs_;
  PostgresProcess process_;
  AgentNodeController controller_;
  NodeObserver observer_;
  Context context_;
  SyncManager sync_;
  std::optional<TimelineId> stopped_timeline_;  // read from pg_control while it stays stopped
  int inotify_fd_ = -1;
  int removals_ = -1;  // the watch on the data directory
};

}  // namespace tandem
