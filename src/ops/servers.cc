#include "ops/servers.h"

#include <fmt/format.h>

#include <filesystem>

#include "pg/server_files.h"
#include "proc/ports.h"

namespace tandem {

std::string admin_conninfo(const ClusterConfig& config, const NodeConfig& node,
                           const std::string& database) {
  if (!config.etcd.enabled()) return local_admin_conninfo(config, node, database);
  return make_conninfo({{"host", node.host},
                        {"port", std::to_string(node.port)},
                        {"user", config.superuser},
                        {"dbname", database},
                        {"passfile", config.password_file},
                        {"connect_timeout", "3"},
                        {"application_name", "tandem"}});
}

Result<Connection> connect_local_admin(const ClusterConfig& config, const NodeConfig& node,
                                       const std::string& database) {
  auto connection = Connection::open(local_admin_conninfo(config, node, database));
  if (!connection) return fail_with_context(connection.error(), node.name);
  return connection;
}

std::string local_admin_conninfo(const ClusterConfig& config, const NodeConfig& node,
                                 const std::string& database) {
  return make_conninfo({{"host", config.socket_dir},
                        {"port", std::to_string(node.port)},
                        {"user", config.superuser},
                        {"dbname", database},
                        {"connect_timeout", "3"},
                        {"application_name", "tandem"}});
}

Result<Connection> connect_admin(const ClusterConfig& config, const NodeConfig& node,
                                 const std::string& database) {
  auto connection = Connection::open(admin_conninfo(config, node, database));
  if (!connection) return fail_with_context(connection.error(), node.name);
  return connection;
}

NodeProbe probe_node(Context& context, const NodeConfig& node) {
  auto connection = connect_admin(context.config, node);
  if (!connection) {
    auto running = context.controller.is_running(node);
    if (running && !*running) return {NodeRunState::kStopped, ""};
    return {NodeRunState::kUnreachable, connection.error().message};
  }
  auto rows = connection->query("SELECT pg_is_in_recovery() AS in_recovery");
  if (!rows) return {NodeRunState::kUnreachable, rows.error().message};
  return {rows->text(0, "in_recovery") == "t" ? NodeRunState::kStandby : NodeRunState::kPrimary,
          ""};
}

Result<const NodeConfig*> find_primary(Context& context, std::string_view except) {
  std::vector<const NodeConfig*> primaries;
  for (const NodeConfig& node : context.config.nodes) {
    if (node.name == except) continue;
    if (probe_node(context, node).state == NodeRunState::kPrimary) primaries.push_back(&node);
  }
  if (primaries.empty()) {
    return fail(ErrorCode::kUnavailable,
                except.empty() ? "no primary is running"
                               : fmt::format("no primary is running besides {}", except));
  }
  if (primaries.size() > 1) {
    return fail(ErrorCode::kConflict,
                fmt::format("{} and {} both accept writes: resolve that before anything else",
                            primaries[0]->name, primaries[1]->name));
  }
  return primaries.front();
}

bool is_absent_or_empty(const std::string& dir) {
  std::error_code error;
  if (!std::filesystem::exists(dir, error)) return true;
  return std::filesystem::is_directory(dir, error) && std::filesystem::is_empty(dir, error);
}

Status check_new_node(const NodeConfig& node) {
  if (!is_absent_or_empty(node.data_dir)) {
    return fail(ErrorCode::kAlreadyExists,
                fmt::format("data directory {} of {} already exists and is not empty: tandem never "
                            "overwrites one; move it away or choose another data_dir",
                            node.data_dir, node.name));
  }
  return check_port_free(node.host, node.port, node.name);
}

namespace {

// The timeline a server writes (primary) or last received (standby).
std::optional<std::string> timeline_of(Connection& connection, bool standby) {
  auto rows = connection.query(
      standby ? "SELECT received_tli::text AS tli FROM pg_stat_wal_receiver "
                "WHERE status = 'streaming'"
              : "SELECT (('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))"
                "::bit(32)::int)::text AS tli");
  if (!rows || rows->empty()) return std::nullopt;
  return rows->get(0, "tli");
}

}  // namespace

Result<TimelineId> standby_timeline(Connection& connection) {
  auto rows = connection.query(
      "SELECT greatest((SELECT received_tli FROM pg_stat_wal_receiver), "
      "       (SELECT timeline_id FROM pg_control_checkpoint()), "
      "       (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir() "
      "        WHERE name ~ '^[0-9A-F]{8}[.]history$'))::text AS tli");
  if (!rows) return std::unexpected(rows.error());
  return static_cast<TimelineId>(std::stoul(rows->text(0, "tli")));
}

Result<TimelineId> primary_timeline(Connection& connection) {
  auto rows = connection.query(
      "SELECT pg_is_in_recovery()::text AS recovery, CASE WHEN NOT pg_is_in_recovery() THEN "
      "(('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int)::text END "
      "AS tli");
  if (!rows) return std::unexpected(rows.error());
  if (rows->text(0, "recovery") == "true") {
    return fail(ErrorCode::kConflict, "the server is still in recovery: it takes no writes");
  }
  return static_cast<TimelineId>(std::stoul(rows->text(0, "tli")));
}

std::optional<Lsn> received_wal(Connection& connection) {
  auto rows = connection.query(
      "SELECT greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text AS lsn");
  if (!rows || !rows->get(0, "lsn")) return std::nullopt;
  auto lsn = Lsn::parse(rows->text(0, "lsn"));
  return lsn ? std::optional(*lsn) : std::nullopt;
}

Status wait_streaming(Context& context, const NodeConfig& primary, const NodeConfig& standby,
                      std::chrono::milliseconds timeout) {
  std::string last_state = "not connected";
  bool streaming = poll_until(context.clock, timeout, std::chrono::milliseconds(100), [&] {
    auto upstream = connect_admin(context.config, primary);
    if (!upstream) return false;
    auto rows = upstream->query("SELECT state FROM pg_stat_replication WHERE application_name = $1",
                                {standby.name});
    if (!rows || rows->empty()) return false;
    last_state = rows->text(0, "state");
    if (last_state != "streaming") return false;
    // A standby that replayed past the primary's fork streams the old timeline up to the fork
    // and then stops: it follows only once it receives the primary's timeline.
    auto downstream = connect_admin(context.config, standby);
    if (!downstream) return false;
    auto primary_timeline = timeline_of(*upstream, false);
    auto standby_timeline = timeline_of(*downstream, true);
    if (primary_timeline != standby_timeline) {
      last_state = fmt::format("streaming timeline {}, not the primary's {}",
                               standby_timeline.value_or("?"), primary_timeline.value_or("?"));
      return false;
    }
    return true;
  });
  if (!streaming) {
    return fail(
        ErrorCode::kTimeout,
        fmt::format("{} is not streaming from {} after {} s (state: {})", standby.name,
                    primary.name, std::chrono::duration_cast<std::chrono::seconds>(timeout).count(),
                    last_state));
  }
  return {};
}

Result<bool> slot_lost(Connection& primary, const std::string& slot) {
  auto rows = primary.query(
      "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND wal_status = 'lost'", {slot});
  if (!rows) return std::unexpected(rows.error());
  return !rows->empty();
}

Result<bool> ensure_slot(Connection& primary, const std::string& slot) {
  auto existing = primary.query(
      "SELECT coalesce(wal_status, '') AS status, active::text AS active FROM "
      "pg_replication_slots WHERE slot_name = $1",
      {slot});
  if (!existing) return std::unexpected(existing.error());
  if (!existing->empty() && existing->text(0, "status") != "lost") return false;
  if (!existing->empty()) {
    if (existing->text(0, "active") == "true") {
      return fail(ErrorCode::kConflict, "slot " + slot + " was invalidated but is still in use");
    }
    if (auto dropped = primary.query("SELECT pg_drop_replication_slot($1)", {slot}); !dropped) {
      return fail_with_context(dropped.error(), "dropping the invalidated slot " + slot);
    }
  }
  // immediately_reserve: the slot holds WAL from now on, before its standby first connects.
  auto created = primary.query("SELECT pg_create_physical_replication_slot($1, true)", {slot});
  if (!created) {
    // Another agent made it between the check and the creation (a new primary creates slots
    // for every node while the old primary's agent, rejoining, ensures its own): there it is.
    if (created.error().message.find("already exists") != std::string::npos) return false;
    return fail_with_context(created.error(), "creating slot " + slot);
  }
  return true;
}

Status write_node_files(Context& context, const NodeConfig& node,
                        const NodeConfig* upstream_primary, ServerRole role,
                        const std::string& synchronous_standby) {
  std::optional<Upstream> upstream;
  if (upstream_primary != nullptr) {
    upstream = Upstream{upstream_conninfo(context.config, *upstream_primary, node.name), node.name};
  }
  if (auto ok =
          write_owned_file(node.data_dir + "/" + kTandemConfName,
                           render_tandem_conf(context.config, node, upstream, synchronous_standby),
                           context.os_user, 0600);
      !ok) {
    return ok;
  }
  std::string signal = node.data_dir + "/standby.signal";
  if (role == ServerRole::kPrimary) {
    std::error_code error;
    std::filesystem::remove(signal, error);
    return {};
  }
  return write_owned_file(signal, "", context.os_user, 0600);
}

}  // namespace tandem
