#include "ops/local_cluster.h"

#include <fmt/format.h>

#include <filesystem>

#include "ops/node_ops.h"
#include "ops/servers.h"
#include "proc/ports.h"

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
  if (probe_node(context, node).state != NodeRunState::kStopped) return {};
  if (port_in_use(node.host, node.port)) {
    return fail(ErrorCode::kConflict, fmt::format("cannot start {}: port {}:{} is already in use",
                                                  node.name, node.host, node.port));
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
  config.log_dir = layout.dir + "/log";
  config.password_file = layout.dir + "/tandem.pgpass";
  config.state_file = layout.dir + "/state.json";
  config.store_file = layout.dir + "/store.db";
  config.ha.agents = layout.agents;
  config.replication.max_slot_wal_keep_size = layout.max_slot_wal_keep_size;
  if (layout.app) config.app = AppConfig{"test_app", "test_app"};
  for (int index = 0; index <= layout.standbys; ++index) {
    std::string name = fmt::format("node{}", index + 1);
    config.nodes.push_back({.name = name,
                            .host = "127.0.0.1",
                            .port = layout.base_port + index,
                            .data_dir = layout.dir + "/" + name});
  }
  return config;
}

Status local_up(Context& context) {
  const ClusterConfig& config = context.config;
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

Status local_start(Context& context, const std::optional<std::string>& node_name) {
  if (node_name) {
    auto node = context.config.node(*node_name);
    if (!node) return std::unexpected(node.error());
    return start_node(context, **node);
  }
  for (const NodeConfig* node : start_order(context.config)) {
    if (auto ok = start_node(context, *node); !ok) return ok;
  }
  return {};
}

Status local_stop(Context& context, const std::optional<std::string>& node_name, StopMode mode) {
  std::vector<const NodeConfig*> nodes;
  if (node_name) {
    auto node = context.config.node(*node_name);
    if (!node) return std::unexpected(node.error());
    nodes.push_back(*node);
  } else {
    nodes = start_order(context.config);
  }
  for (const NodeConfig* node : nodes) {
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
