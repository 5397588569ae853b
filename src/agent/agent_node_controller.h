// The NodeController the agent hands to the cluster operations: start and stop go through the
// supervised child (PostgresProcess); everything else runs the PostgreSQL programs as usual.
#pragma once

#include "agent/postgres_process.h"
#include "common/clock.h"
#include "pg/node_controller.h"

namespace tandem {

class AgentNodeController final : public NodeController {
 public:
  // `self` is the agent's node: the only one it starts and stops. `clock` times the wait in
  // start(). REQUIRES: everything passed by reference outlives this object.
  AgentNodeController(const ClusterConfig& config, std::string self, PgNodeController& programs,
                      PostgresProcess& process, Clock& clock)
      : config_(config),
        self_(std::move(self)),
        programs_(programs),
        process_(process),
        clock_(clock) {}

  // Spawns the child (stopping a postmaster this agent did not start first) and waits until it
  // accepts connections.
  Status start(const NodeConfig& node) override;
  // Spawns the child and returns at once; the agent's cycle sees it come up.
  Status spawn(const NodeConfig& node);
  Status stop(const NodeConfig& node, StopMode mode) override;
  Result<bool> is_running(const NodeConfig& node) override;

  Status initdb(const NodeConfig& node) override { return programs_.initdb(node); }
  Status promote(const NodeConfig& node) override { return programs_.promote(node); }
  Status reload(const NodeConfig& node) override { return programs_.reload(node); }
  Status base_backup(const NodeConfig& node, const std::string& source_conninfo,
                     const std::string& slot, bool create_slot) override {
    return programs_.base_backup(node, source_conninfo, slot, create_slot);
  }
  Result<RewindReport> rewind(const NodeConfig& node, const std::string& source_conninfo) override {
    return programs_.rewind(node, source_conninfo);
  }
  Result<ControlData> control_data(const NodeConfig& node) override {
    return programs_.control_data(node);
  }
  Status finish_crash_recovery(const NodeConfig& node) override {
    return programs_.finish_crash_recovery(node);
  }

 private:
  Status check_self(const NodeConfig& node) const;

  const ClusterConfig& config_;
  std::string self_;
  PgNodeController& programs_;
  PostgresProcess& process_;
  Clock& clock_;
};

}  // namespace tandem
