#include "ops/servers.h"

#include <fmt/format.h>

#include <filesystem>

#include "pg/replication_queries.h"
#include "pg/server_files.h"
#include "pg/server_queries.h"
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
  auto standby = is_in_recovery(*connection);
  if (!standby) return {NodeRunState::kUnreachable, standby.error().message};
  return {*standby ? NodeRunState::kStandby : NodeRunState::kPrimary, ""};
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

std::string timeline_text(std::optional<TimelineId> timeline) {
  return timeline ? std::to_string(*timeline) : "?";
}

}  // namespace

Status wait_streaming(Context& context, const NodeConfig& primary, const NodeConfig& standby,
                      std::chrono::milliseconds timeout) {
  std::string last_state = "not connected";
  bool streaming = poll_until(context.clock, timeout, std::chrono::milliseconds(100), [&] {
    auto upstream = connect_admin(context.config, primary);
    if (!upstream) return false;
    auto state = replication_state(*upstream, standby.name);
    if (!state || !*state) return false;
    last_state = **state;
    if (last_state != "streaming") return false;
    // A standby that replayed past the primary's fork streams the old timeline up to the fork
    // and then stops: it follows only once it receives the primary's timeline.
    auto downstream = connect_admin(context.config, standby);
    if (!downstream) return false;
    auto primary_timeline = writing_timeline(*upstream);
    auto standby_timeline = streaming_timeline(*downstream);
    if (primary_timeline != standby_timeline) {
      last_state = fmt::format("streaming timeline {}, not the primary's {}",
                               timeline_text(standby_timeline), timeline_text(primary_timeline));
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
