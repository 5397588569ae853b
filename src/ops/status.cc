#include "ops/status.h"

#include <fmt/format.h>

#include <filesystem>

#include "core/decide.h"
#include "dcs/cluster_layout.h"
#include "ops/state_file.h"
#include "ops/store_access.h"
#include "pg/admin_connection.h"
#include "pg/replication_queries.h"
#include "pg/server_queries.h"
#include "pg/slot_queries.h"

namespace tandem {
namespace {

void read_primary(Connection& connection, const ClusterConfig& config, NodeReport& node,
                  ClusterReport& report) {
  if (auto self = primary_position(connection)) {
    node.wal_lsn = self->wal_lsn;
    node.timeline = self->timeline;
  }
  node.detail = "accepting writes";
  if (config.backup.enabled()) {
    if (auto archiver = archiver_stats(connection)) report.archiver = *archiver;
  }
  auto slots = physical_slots(connection);
  if (!slots) return;
  for (SlotRow& slot : *slots) report.slots.push_back(std::move(slot));
}

void read_standby(Connection& connection, const ClusterConfig& config, NodeReport& node) {
  auto position = standby_position(connection);
  if (!position) {
    node.detail = position.error().message;
    return;
  }
  node.wal_lsn = position->received;
  node.replay_lsn = position->replayed;
  node.last_replay_at = position->replayed_at;
  if (position->timeline) node.timeline = *position->timeline;
  node.detail = "not streaming";
  for (const NodeConfig& other : config.nodes) {
    if (position->sender_port && other.port == *position->sender_port) {
      node.detail = "streaming from " + other.name;
    }
  }
}

NodeReport read_node(Context& context, const NodeConfig& config_node, ClusterReport& report,
                     std::vector<ReplicationRow>& replication) {
  NodeReport node{.name = config_node.name,
                  .endpoint = fmt::format("{}:{}", config_node.host, config_node.port)};
  auto connection = connect_admin(context.config, config_node);
  if (!connection) {
    auto running = context.controller.is_running(config_node);
    node.role = running && !*running ? NodeRole::kStopped : NodeRole::kUnreachable;
    node.detail = node.role == NodeRole::kStopped ? "not running" : connection.error().message;
    return node;
  }
  auto standby = is_in_recovery(*connection);
  if (!standby) {
    node.detail = standby.error().message;
    return node;
  }
  node.pending_restart = pending_restart(*connection).value_or(std::vector<std::string>());
  node.configuration_errors =
      configuration_errors(*connection).value_or(std::vector<std::string>());
  if (*standby) {
    node.role = NodeRole::kStandby;
    read_standby(*connection, context.config, node);
  } else {
    node.role = NodeRole::kPrimary;
    if (!report.primary) report.primary = node.name;
    read_primary(*connection, context.config, node, report);
    replication = replication_rows(*connection).value_or(std::vector<ReplicationRow>());
  }
  return node;
}

// The agents' view from the store; nullopt when the cluster has none (or no store yet).
// A store that cannot be read is a warning of its own: the agents cannot work without it, and it
// is usually why no primary runs.
std::optional<AgentsReport> read_agents(Context& context, std::vector<std::string>& warnings) {
  const ClusterConfig& config = context.config;
  if (!config.ha.agents) return std::nullopt;
  if (!config.on_several_machines() && !std::filesystem::exists(config.store_file)) {
    return std::nullopt;
  }
  std::string where = config.on_several_machines() ? "in etcd" : config.store_file;
  auto store = open_cluster_store(config, context.clock);
  ClusterLayout layout(config.name);
  auto snapshot = store ? (*store)->read(layout.prefix())
                        : Result<StoreSnapshot>(std::unexpected(store.error()));
  if (!snapshot) {
    warnings.push_back(
        fmt::format("the coordination store ({}) cannot be read: {}; the agents "
                    "cannot act without it",
                    where, snapshot.error().message));
    return std::nullopt;
  }
  ClusterView view = layout.view(*snapshot);
  HaConfig ha = eligibility_rules(config);
  return AgentsReport{.leader = view.leader ? view.leader->name : "",
                      .paused = view.paused,
                      .synchronous_mode = config.ha.synchronous_mode,
                      .synchronous_strict = config.ha.synchronous_mode_strict,
                      .synchronous_node_count = config.ha.synchronous_node_count,
                      .sync_standbys = view.sync_standbys,
                      .sync_quorum = view.sync_quorum,
                      // Under quorum commit, as if the freezes a failover waits for came: they
                      // do, from every live standby of the record.
                      .candidates = failover_candidates(view, ha, /*planned=*/true),
                      .not_eligible = ineligibility_reasons(view, ha, /*planned=*/true),
                      .last_backup = view.last_backup};
}

}  // namespace

ClusterReport collect_status(Context& context) {
  ClusterReport report;
  std::vector<ReplicationRow> replication;
  for (const NodeConfig& config_node : context.config.nodes) {
    report.nodes.push_back(read_node(context, config_node, report, replication));
  }
  const NodeReport* primary = nullptr;
  for (const NodeReport& node : report.nodes) {
    if (report.primary && node.name == *report.primary) primary = &node;
  }
  for (NodeReport& node : report.nodes) {
    for (const ReplicationRow& row : replication) {
      if (row.application_name == node.name) node.replication = row;
    }
    if (primary && primary->wal_lsn && node.role == NodeRole::kStandby && node.replay_lsn) {
      node.lag_bytes = primary->wal_lsn->bytes_after(*node.replay_lsn);
    }
  }
  std::vector<std::string> store_warnings;
  report.agents = read_agents(context, store_warnings);
  report.warnings.insert(report.warnings.end(), store_warnings.begin(), store_warnings.end());
  WallTime now = context.clock.wall_now();
  if (report.primary) {
    auto inactive =
        track_inactive_slots(load_inactive_slots(context.config.state_file), report.slots, now);
    for (SlotRow& slot : report.slots) {
      if (auto it = inactive.find(slot.name); it != inactive.end())
        slot.inactive_since = it->second;
    }
    if (auto ok = save_inactive_slots(context.config.state_file, inactive, context.os_user); !ok) {
      report.warnings.push_back(ok.error().message);
    }
  }
  auto warnings = assess(report, context.config, now);
  report.warnings.insert(report.warnings.end(), warnings.begin(), warnings.end());
  return report;
}

}  // namespace tandem
