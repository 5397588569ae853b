// What a running agent makes of tandem.yaml read again (SIGHUP, `tandem reload`): the settings
// it takes at once, and those that need the agent restarted, named. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/cluster_config.h"

namespace tandem {

struct ReloadPlan {
  // Applied at once, between two cycles (nullopt: unchanged).
  std::optional<std::int64_t> maximum_lag_on_failover;
  std::optional<bool> nofailover;  // this node's
  std::optional<CallbacksConfig> callbacks;
  // One machine: members added or removed, every other member unchanged. The agent takes the
  // new list between two cycles without restarting PostgreSQL (AgentProcess rebuilds what
  // was made from the old one); a node no longer listed stops its agent.
  std::optional<std::vector<NodeConfig>> nodes;
  // Changed, but kept at the running value until the agent restarts (its lease, watchdog,
  // store connections, API and PostgreSQL's files were made from them): "ha.ttl", "nodes", ...
  std::vector<std::string> need_restart;
};

// `fresh` as the agent reads it: on several machines, once the members changed at run time,
// the member list in the store rules and the file's nodes are not read (they may be older) but
// for their nofailover: each host's file speaks for its own node.
ClusterConfig with_running_members(const ClusterConfig& fresh, const ClusterConfig& running);

// REQUIRES: both validated; `self` names a node of `running`.
ReloadPlan plan_reload(const ClusterConfig& running, const ClusterConfig& fresh,
                       const std::string& self);

// One line for the log: what was applied, what waits for a restart, or that nothing changed.
std::string describe_reload(const ReloadPlan& plan, const ClusterConfig& running,
                            const std::string& self);

}  // namespace tandem
