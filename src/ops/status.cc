#include "ops/status.h"

#include <fmt/format.h>

#include <filesystem>

#include "core/decide.h"
#include "dcs/cluster_layout.h"
#include "ops/servers.h"
#include "ops/state_file.h"
#include "ops/store_access.h"

namespace tandem {
namespace {

std::optional<Lsn> lsn_of(const QueryResult& rows, std::size_t row, std::string_view column) {
  const auto& value = rows.get(row, column);
  if (!value) return std::nullopt;
  auto lsn = Lsn::parse(*value);
  return lsn ? std::optional(*lsn) : std::nullopt;
}

std::optional<double> number_of(const QueryResult& rows, std::size_t row, std::string_view column) {
  const auto& value = rows.get(row, column);
  if (!value) return std::nullopt;
  return std::stod(*value);
}

std::optional<WallTime> time_of(const QueryResult& rows, std::size_t row, std::string_view column) {
  auto seconds = number_of(rows, row, column);
  if (!seconds) return std::nullopt;
  return WallTime(std::chrono::microseconds(static_cast<std::int64_t>(*seconds * 1e6)));
}

void read_primary(Connection& connection, NodeReport& node, ClusterReport& report) {
  auto self = connection.query(
      "SELECT pg_current_wal_lsn() AS lsn, "
      "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS timeline");
  if (self) {
    node.wal_lsn = lsn_of(*self, 0, "lsn");
    node.timeline = static_cast<TimelineId>(std::stoul(self->text(0, "timeline")));
  }
  node.detail = "accepting writes";
  auto slots = connection.query(
      "SELECT slot_name, active, restart_lsn, wal_status, "
      "pg_current_wal_lsn() - restart_lsn AS retained, safe_wal_size "
      "FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY slot_name");
  if (!slots) return;
  for (std::size_t row = 0; row < slots->size(); ++row) {
    SlotRow slot{.name = slots->text(row, "slot_name"),
                 .active = slots->text(row, "active") == "t",
                 .restart_lsn = lsn_of(*slots, row, "restart_lsn"),
                 .wal_status = slots->text(row, "wal_status")};
    if (auto retained = number_of(*slots, row, "retained")) {
      slot.retained_bytes = static_cast<std::int64_t>(*retained);
    }
    if (auto safe = number_of(*slots, row, "safe_wal_size")) {
      slot.safe_wal_size = static_cast<std::int64_t>(*safe);
    }
    report.slots.push_back(std::move(slot));
  }
}

std::vector<ReplicationRow> read_replication(Connection& connection) {
  std::vector<ReplicationRow> rows;
  auto result = connection.query(
      "SELECT application_name, state, sent_lsn, write_lsn, flush_lsn, replay_lsn, "
      "extract(epoch FROM write_lag) AS write_lag, extract(epoch FROM flush_lag) AS flush_lag, "
      "extract(epoch FROM replay_lag) AS replay_lag, sync_state FROM pg_stat_replication");
  if (!result) return rows;
  for (std::size_t row = 0; row < result->size(); ++row) {
    rows.push_back({.application_name = result->text(row, "application_name"),
                    .state = result->text(row, "state"),
                    .sent = lsn_of(*result, row, "sent_lsn"),
                    .write = lsn_of(*result, row, "write_lsn"),
                    .flush = lsn_of(*result, row, "flush_lsn"),
                    .replay = lsn_of(*result, row, "replay_lsn"),
                    .write_lag_s = number_of(*result, row, "write_lag"),
                    .flush_lag_s = number_of(*result, row, "flush_lag"),
                    .replay_lag_s = number_of(*result, row, "replay_lag"),
                    .sync_state = result->text(row, "sync_state")});
  }
  return rows;
}

void read_standby(Connection& connection, const ClusterConfig& config, NodeReport& node) {
  auto rows = connection.query(
      "SELECT pg_last_wal_receive_lsn() AS received, pg_last_wal_replay_lsn() AS replayed, "
      "extract(epoch FROM pg_last_xact_replay_timestamp()) AS replayed_at, "
      "coalesce((SELECT received_tli FROM pg_stat_wal_receiver), "
      "(SELECT timeline_id FROM pg_control_checkpoint())) AS timeline, "
      "(SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming') AS sender_port");
  if (!rows) {
    node.detail = rows.error().message;
    return;
  }
  node.wal_lsn = lsn_of(*rows, 0, "received");
  node.replay_lsn = lsn_of(*rows, 0, "replayed");
  node.last_replay_at = time_of(*rows, 0, "replayed_at");
  if (auto timeline = rows->get(0, "timeline")) {
    node.timeline = static_cast<TimelineId>(std::stoul(*timeline));
  }
  std::string sender_port = rows->text(0, "sender_port");
  node.detail = "not streaming";
  for (const NodeConfig& other : config.nodes) {
    if (!sender_port.empty() && std::to_string(other.port) == sender_port) {
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
  auto recovery = connection->query("SELECT pg_is_in_recovery() AS in_recovery");
  if (!recovery) {
    node.detail = recovery.error().message;
    return node;
  }
  if (recovery->text(0, "in_recovery") == "t") {
    node.role = NodeRole::kStandby;
    read_standby(*connection, context.config, node);
  } else {
    node.role = NodeRole::kPrimary;
    if (!report.primary) report.primary = node.name;
    read_primary(*connection, node, report);
    replication = read_replication(*connection);
  }
  return node;
}

// The agents' view from the store; nullopt when the cluster has none (or no store yet).
// A store that cannot be read is a warning of its own: the agents cannot work without it, and it
// is usually why no primary runs.
std::optional<AgentsReport> read_agents(Context& context, std::vector<std::string>& warnings) {
  const ClusterConfig& config = context.config;
  if (!config.ha.agents) return std::nullopt;
  if (!config.etcd.enabled() && !std::filesystem::exists(config.store_file)) return std::nullopt;
  std::string where = config.etcd.enabled() ? "in etcd" : config.store_file;
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
  HaConfig ha{.maximum_lag_on_failover = config.ha.maximum_lag_on_failover,
              .synchronous_mode = config.ha.synchronous_mode};
  return AgentsReport{.leader = view.leader ? view.leader->name : "",
                      .paused = view.paused,
                      .synchronous_mode = config.ha.synchronous_mode,
                      .sync_standby = view.sync_standby,
                      .candidates = failover_candidates(view, ha),
                      .not_eligible = ineligibility_reasons(view, ha)};
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
