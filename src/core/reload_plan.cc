#include "core/reload_plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <functional>
#include <set>

#include "common/units.h"

namespace tandem {
namespace {

// A config without what a reload applies at once: equal when nothing else changed.
ClusterConfig without_live_settings(ClusterConfig config) {
  config.ha.maximum_lag_on_failover = 0;
  config.callbacks = {};
  for (NodeConfig& node : config.nodes) node.nofailover = false;
  return config;
}

// Each setting that needs a restart, by the name tandem.yaml gives it, and how to tell a change.
std::vector<std::pair<std::string, std::function<std::string(const ClusterConfig&)>>>
restart_settings() {
  auto ms = [](std::chrono::milliseconds value) { return std::to_string(value.count()); };
  return {
      {"name", [](const ClusterConfig& c) { return c.name; }},
      {"nodes",
       [](const ClusterConfig& c) { return render_config(ClusterConfig{.nodes = c.nodes}); }},
      {"os_user", [](const ClusterConfig& c) { return c.os_user; }},
      {"pg_bin", [](const ClusterConfig& c) { return c.pg_bin; }},
      {"ha.loop_interval", [ms](const ClusterConfig& c) { return ms(c.ha.loop_interval); }},
      {"ha.ttl", [ms](const ClusterConfig& c) { return ms(c.ha.ttl); }},
      {"ha.renew_deadline", [ms](const ClusterConfig& c) { return ms(c.ha.renew_deadline); }},
      {"ha.cycle_stall_limit", [ms](const ClusterConfig& c) { return ms(c.ha.cycle_stall_limit); }},
      {"ha.synchronous_mode",
       [](const ClusterConfig& c) { return std::string(c.ha.synchronous_mode ? "on" : "off"); }},
      {"ha.synchronous_mode_strict",
       [](const ClusterConfig& c) {
         return std::string(c.ha.synchronous_mode_strict ? "on" : "off");
       }},
      {"ha.synchronous_node_count",
       [](const ClusterConfig& c) { return std::to_string(c.ha.synchronous_node_count); }},
      {"replication",
       [](const ClusterConfig& c) {
         return render_config(ClusterConfig{.replication = c.replication});
       }},
      {"api", [](const ClusterConfig& c) { return render_config(ClusterConfig{.api = c.api}); }},
      {"etcd", [](const ClusterConfig& c) { return render_config(ClusterConfig{.etcd = c.etcd}); }},
      {"postgresql.tls",
       [](const ClusterConfig& c) { return render_config(ClusterConfig{.tls = c.tls}); }},
      {"backup",
       [](const ClusterConfig& c) {
         return render_config(ClusterConfig{.name = c.name, .backup = c.backup});
       }},
  };
}

// Whether the new list only adds or removes members, every member in both unchanged (one that
// moved, a port or a data directory, is its agent's and PostgreSQL's restart).
bool members_added_or_removed(const ClusterConfig& before, const ClusterConfig& after) {
  for (const NodeConfig& node : before.nodes) {
    const NodeConfig* same = after.find_node(node.name);
    if (same != nullptr && render_config(ClusterConfig{.nodes = {node}}) !=
                               render_config(ClusterConfig{.nodes = {*same}})) {
      return false;
    }
  }
  auto names = [](const ClusterConfig& config) {
    std::set<std::string> all;
    for (const NodeConfig& node : config.nodes) all.insert(node.name);
    return all;
  };
  return names(before) != names(after);
}

}  // namespace

ClusterConfig with_running_members(const ClusterConfig& fresh, const ClusterConfig& running) {
  ClusterConfig read = fresh;
  if (running.member_list > 0 && fresh.on_several_machines()) {
    read.nodes = running.nodes;
    read.member_list = running.member_list;
    read.previous_members = running.previous_members;
    for (NodeConfig& node : read.nodes) {  // each host's file speaks for its own node's
      if (const NodeConfig* mine = fresh.find_node(node.name)) node.nofailover = mine->nofailover;
    }
  }
  return read;
}

ReloadPlan plan_reload(const ClusterConfig& running, const ClusterConfig& file,
                       const std::string& self) {
  ClusterConfig fresh = with_running_members(file, running);
  ReloadPlan plan;
  if (fresh.ha.maximum_lag_on_failover != running.ha.maximum_lag_on_failover) {
    plan.maximum_lag_on_failover = fresh.ha.maximum_lag_on_failover;
  }
  if (!(fresh.callbacks == running.callbacks)) plan.callbacks = fresh.callbacks;
  const NodeConfig* before = running.find_node(self);
  const NodeConfig* after = fresh.find_node(self);
  if (before != nullptr && after != nullptr && before->nofailover != after->nofailover) {
    plan.nofailover = after->nofailover;
  }
  ClusterConfig old_rest = without_live_settings(running);
  ClusterConfig new_rest = without_live_settings(fresh);
  if (members_added_or_removed(old_rest, new_rest) && !fresh.on_several_machines()) {
    plan.nodes = fresh.nodes;
    old_rest.nodes = new_rest.nodes;  // not a change that waits
  }
  for (const auto& [name, value] : restart_settings()) {
    if (value(old_rest) != value(new_rest)) plan.need_restart.push_back(name);
  }
  // Anything else (paths, thresholds) changed: said as such rather than missed.
  if (plan.need_restart.empty() && render_config(old_rest) != render_config(new_rest)) {
    plan.need_restart.push_back("other settings");
  }
  return plan;
}

std::string describe_reload(const ReloadPlan& plan, const ClusterConfig& running,
                            const std::string& self) {
  std::vector<std::string> applied;
  if (plan.maximum_lag_on_failover) {
    applied.push_back(fmt::format("ha.maximum_lag_on_failover {} -> {}",
                                  format_size_exact(running.ha.maximum_lag_on_failover),
                                  format_size_exact(*plan.maximum_lag_on_failover)));
  }
  if (plan.nofailover) {
    applied.push_back(fmt::format("nofailover of {} -> {}", self, *plan.nofailover));
  }
  if (plan.callbacks) applied.push_back("callbacks");
  if (plan.nodes) {
    std::vector<std::string> changes;
    for (const NodeConfig& node : *plan.nodes) {
      if (running.find_node(node.name) == nullptr) changes.push_back("+" + node.name);
    }
    for (const NodeConfig& node : running.nodes) {
      bool kept = std::ranges::any_of(
          *plan.nodes, [&](const NodeConfig& other) { return other.name == node.name; });
      if (!kept) changes.push_back("-" + node.name);
    }
    applied.push_back(fmt::format("members {}", fmt::join(changes, " ")));
  }
  std::string line = applied.empty() ? "nothing to apply at once"
                                     : fmt::format("applied {}", fmt::join(applied, ", "));
  if (!plan.need_restart.empty()) {
    line += fmt::format("; changed but kept until the agent restarts: {}",
                        fmt::join(plan.need_restart, ", "));
  }
  return line;
}

}  // namespace tandem
