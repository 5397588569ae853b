#include "local/local_cluster.h"

#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>

#include "local/local_agents.h"
#include "ops/clone.h"
#include "ops/init.h"
#include "pg/node_probe.h"
#include "pg/postmaster.h"
#include "proc/detached.h"
#include "proc/ports.h"
#include "proc/secret_file.h"

namespace tandem {
namespace {

bool has_data(const NodeConfig& node) {
  return std::filesystem::exists(node.data_dir + "/PG_VERSION");
}

bool is_standby_dir(const NodeConfig& node) {
  return std::filesystem::exists(node.data_dir + "/standby.signal");
}

// Nodes that would start as primaries first: standbys need their primary to stream from.
std::vector<const NodeConfig*> start_order(const ClusterConfig& config) {
  std::vector<const NodeConfig*> order;
  for (const NodeConfig& node : config.nodes) {
    if (!is_standby_dir(node)) order.push_back(&node);
  }
  for (const NodeConfig& node : config.nodes) {
    if (is_standby_dir(node)) order.push_back(&node);
  }
  return order;
}

Status start_node(Context& context, const NodeConfig& node) {
  if (!has_data(node)) {
    return fail(ErrorCode::kNotFound,
                fmt::format("{} has no data directory at {}: run `tandem local up`", node.name,
                            node.data_dir));
  }
  if (probe_node(context.config, context.controller, node).state != NodeRunState::kStopped)
    return {};
  if (auto ok = check_port_free(node.host, node.port, node.name); !ok) {
    return fail_with_context(ok.error(), "cannot start " + node.name);
  }
  if (auto ok = context.controller.start(node); !ok) return ok;
  context.report(fmt::format("started {} ({}) on {}:{}", node.name,
                             is_standby_dir(node) ? "standby" : "primary", node.host, node.port));
  return {};
}

}  // namespace

ClusterConfig local_config(const LocalLayout& layout) {
  ClusterConfig config;
  config.name = "local";
  config.os_user = layout.os_user;
  config.pg_bin = layout.pg_bin;
  config.socket_dir = layout.dir + "/run";
  place_files_in(config, layout.dir);
  config.ha.agents = layout.agents;
  config.replication.max_slot_wal_keep_size = layout.max_slot_wal_keep_size;
  if (layout.app) config.app = AppConfig{"test_app", "test_app"};
  int api_base_port = layout.api_base_port != 0 ? layout.api_base_port : layout.base_port + 2576;
  for (int index = 0; index <= layout.standbys; ++index) {
    std::string name = fmt::format("node{}", index + 1);
    config.nodes.push_back({.name = name,
                            .host = "127.0.0.1",
                            .port = layout.base_port + index,
                            .data_dir = layout.dir + "/" + name,
                            .api_port = api_base_port + index});
  }
  config.replication.max_wal_senders = default_max_wal_senders(config.nodes.size());
  config.replication.max_replication_slots = default_max_replication_slots(config.nodes.size());
  return config;
}

Status local_up(Context& context, const std::string& config_path) {
  const ClusterConfig& config = context.config;
  if (!config.api.token_file.empty()) {
    if (auto token = ensure_secret_file(config.api.token_file); !token) {
      return std::unexpected(token.error());
    }
  }
  if (config.ha.agents) {
    // The agents bootstrap, clone and start everything themselves. A new cluster's primary is
    // its first node, as without agents: its agent starts alone until it has bootstrapped.
    bool fresh = std::ranges::none_of(config.nodes, has_data);
    for (const NodeConfig& node : config.nodes) {
      if (auto ok = start_agent(context, config_path, node); !ok) return ok;
      if (fresh && &node == &config.nodes.front()) {
        if (auto ok = wait_cluster_ready(context, std::chrono::minutes(1), true); !ok) return ok;
      }
    }
    return wait_cluster_ready(context, std::chrono::minutes(3));
  }
  for (const NodeConfig* node : start_order(config)) {
    if (!has_data(*node)) continue;
    if (auto ok = start_node(context, *node); !ok) return ok;
  }
  bool any_data = false;
  for (const NodeConfig& node : config.nodes) any_data = any_data || has_data(node);
  for (const NodeConfig& node : config.nodes) {
    if (has_data(node)) continue;
    if (!any_data) {
      if (auto ok = init_primary(context, node); !ok) return ok;
      any_data = true;
      continue;
    }
    if (auto ok = clone_standby(context, node); !ok) return ok;
  }
  return {};
}

namespace {

// The named node, or all of them in `order`.
Result<std::vector<const NodeConfig*>> select_nodes(Context& context,
                                                    const std::optional<std::string>& node_name,
                                                    std::vector<const NodeConfig*> order) {
  if (!node_name) return order;
  auto node = context.config.node(*node_name);
  if (!node) return std::unexpected(node.error());
  return std::vector<const NodeConfig*>{*node};
}

}  // namespace

Status local_start(Context& context, const std::string& config_path,
                   const std::optional<std::string>& node_name) {
  auto nodes = select_nodes(context, node_name, start_order(context.config));
  if (!nodes) return std::unexpected(nodes.error());
  for (const NodeConfig* node : *nodes) {
    Status started = context.config.ha.agents ? start_agent(context, config_path, *node)
                                              : start_node(context, *node);
    if (!started) return started;
  }
  return {};
}

namespace {

// Agents of standbys first, so that none of them takes over from a primary being stopped.
std::vector<const NodeConfig*> agent_stop_order(Context& context) {
  std::vector<const NodeConfig*> standbys, primaries;
  for (const NodeConfig& node : context.config.nodes) {
    bool primary =
        probe_node(context.config, context.controller, node).state == NodeRunState::kPrimary;
    (primary ? primaries : standbys).push_back(&node);
  }
  standbys.insert(standbys.end(), primaries.begin(), primaries.end());
  return standbys;
}

// A host crash: the agent, what it started (its watchdog, a backup's pgBackRest and workers)
// and its postmaster die at the same instant — a pgBackRest left running held the stanza's
// lock half a minute after the "crash" (BackupTest).
Status crash_with_agent(Context& context, const NodeConfig& node) {
  auto agent = find_agent(context.config, node);
  if (!agent) return std::unexpected(agent.error());
  auto postmaster = running_postmaster(node.data_dir);
  if (*agent) {
    std::vector<pid_t> started = descendants_of(**agent);
    if (auto ok = kill_agent(context.config, node, SIGKILL); !ok) return ok;
    for (pid_t pid : started) kill(pid, SIGKILL);
  }
  if (postmaster) kill(*postmaster, SIGKILL);
  if (!*agent && !postmaster) {
    context.report(fmt::format("{} is not running", node.name));
    return {};
  }
  context.report(fmt::format("crashed {}: its agent and PostgreSQL killed together", node.name));
  return {};
}

}  // namespace

Status local_kill_postgres(Context& context, const std::string& node_name) {
  auto node = context.config.node(node_name);
  if (!node) return std::unexpected(node.error());
  auto postmaster = running_postmaster((*node)->data_dir);
  if (!postmaster) return fail(ErrorCode::kConflict, node_name + "'s PostgreSQL is not running");
  kill(*postmaster, SIGKILL);
  context.report(fmt::format("killed the postmaster of {} (pid {})", node_name, *postmaster));
  return {};
}

Status local_stop(Context& context, const std::optional<std::string>& node_name, StopMode mode) {
  auto nodes = select_nodes(context, node_name,
                            node_name                  ? std::vector<const NodeConfig*>{}
                            : context.config.ha.agents ? agent_stop_order(context)
                                                       : start_order(context.config));
  if (!nodes) return std::unexpected(nodes.error());
  for (const NodeConfig* node : *nodes) {
    if (context.config.ha.agents) {
      if (mode == StopMode::kImmediate) {
        if (auto ok = crash_with_agent(context, *node); !ok) return ok;
        continue;
      }
      bool had_agent = running_agent(context.config, *node).has_value();
      if (auto ok = signal_agent(context, *node, SIGTERM); !ok) return ok;
      if (had_agent) {
        context.report(fmt::format("stopped the agent of {} and its PostgreSQL", node->name));
      }
      // A postmaster started by hand would outlive its absent agent.
      if (!running_postmaster(node->data_dir)) continue;
    }
    auto running = context.controller.is_running(*node);
    if (!running) return std::unexpected(running.error());
    if (!*running) {
      if (node_name) context.report(fmt::format("{} is not running", node->name));
      continue;
    }
    if (auto ok = context.controller.stop(*node, mode); !ok) return ok;
    context.report(
        fmt::format("{} {}", mode == StopMode::kImmediate ? "crashed" : "stopped", node->name));
  }
  return {};
}

}  // namespace tandem
