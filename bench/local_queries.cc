#include "bench/local_queries.h"

#include "pg/connection.h"

namespace tandem::bench {

std::string node_conninfo(const ClusterConfig& config, const std::string& node) {
  // An unknown name (no primary found, say) reaches no server rather than crashing the caller.
  const NodeConfig* found = config.find_node(node);
  return make_conninfo({{"host", config.socket_dir},
                        {"port", std::to_string(found != nullptr ? found->port : 0)},
                        {"user", config.superuser},
                        {"dbname", "test_app"},
                        {"connect_timeout", "1"}});
}

std::string any_primary_conninfo(const ClusterConfig& config) {
  std::string hosts, ports;
  for (const NodeConfig& node : config.nodes) {
    hosts += hosts.empty() ? "" : ",";
    hosts += config.socket_dir;
    ports += ports.empty() ? "" : ",";
    ports += std::to_string(node.port);
  }
  return make_conninfo({{"host", hosts},
                        {"port", ports},
                        {"user", config.superuser},
                        {"dbname", "test_app"},
                        {"target_session_attrs", "read-write"},
                        {"connect_timeout", "1"}});
}

std::optional<std::string> query_value(const ClusterConfig& config, const std::string& node,
                                       const std::string& query) {
  auto connection = Connection::open(node_conninfo(config, node));
  if (!connection) return std::nullopt;
  auto rows = connection->query(query);
  if (!rows || rows->empty()) return std::nullopt;
  return rows->get(0, "v");
}

std::string writable_node(const ClusterConfig& config) {
  std::string primary;
  for (const NodeConfig& node : config.nodes) {
    if (query_value(config, node.name, "SELECT (NOT pg_is_in_recovery())::text AS v") == "true") {
      if (!primary.empty()) return "";
      primary = node.name;
    }
  }
  return primary;
}

bool streams(const ClusterConfig& config, const std::string& primary, const std::string& standby) {
  return query_value(config, primary,
                     "SELECT state AS v FROM pg_stat_replication WHERE application_name = '" +
                         standby + "'") == "streaming";
}

}  // namespace tandem::bench
