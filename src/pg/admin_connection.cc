#include "pg/admin_connection.h"

#include <fmt/format.h>

namespace tandem {
namespace {

// The superuser's sessions take nothing from the cluster's settings that could change what
// tandem's statements mean, cut them short or hold them: functions and views from pg_catalog only
// (a search_path through a schema others can write would run their functions as the superuser), no
// statement, lock or idle timeout (a CHECKPOINT before a rewind, the observer's kept connection).
// Its own commits (roles, passwords) never wait for a synchronous standby: strict mode waits for
// any, and there may be none yet.
constexpr char kPinnedSession[] =
    "-c search_path=pg_catalog,pg_temp -c statement_timeout=0 -c lock_timeout=0 "
    "-c idle_session_timeout=0 -c idle_in_transaction_session_timeout=0 "
    "-c synchronous_commit=local";

}  // namespace

std::map<std::string, std::string> with_tls(const ClusterConfig& config,
                                            std::map<std::string, std::string> parameters) {
  if (config.tls.enabled()) {
    parameters["sslmode"] = "verify-full";
    parameters["sslrootcert"] = config.tls.ca_file;
  }
  return parameters;
}

std::string admin_conninfo(const ClusterConfig& config, const NodeConfig& node,
                           const std::string& database) {
  if (!config.on_several_machines()) return local_admin_conninfo(config, node, database);
  return make_conninfo(with_tls(config, {{"host", node.host},
                                         {"port", std::to_string(node.port)},
                                         {"user", config.superuser},
                                         {"dbname", database},
                                         {"passfile", config.password_file},
                                         {"connect_timeout", "3"},
                                         {"application_name", "tandem"},
                                         {"options", kPinnedSession}}));
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
                        {"application_name", "tandem"},
                        {"options", kPinnedSession}});
}

Result<Connection> connect_admin(const ClusterConfig& config, const NodeConfig& node,
                                 const std::string& database) {
  auto connection = Connection::open(admin_conninfo(config, node, database));
  if (!connection) return fail_with_context(connection.error(), node.name);
  return connection;
}

Status check_replication_login(const ClusterConfig& config, const NodeConfig& primary) {
  std::string conninfo = make_conninfo(with_tls(config, {{"host", primary.host},
                                                         {"port", std::to_string(primary.port)},
                                                         {"user", config.replication.user},
                                                         {"passfile", config.password_file},
                                                         {"replication", "true"},
                                                         {"connect_timeout", "5"}}));
  auto connection = Connection::open(conninfo);
  if (connection) return {};
  const Error& error = connection.error();
  if (error.message.find("password authentication failed") != std::string::npos) {
    return fail(ErrorCode::kPermissionDenied,
                fmt::format("{} refused the password of {} from {}: fix the password file",
                            primary.name, config.replication.user, config.password_file));
  }
  if (error.code == ErrorCode::kPermissionDenied) {
    return fail(ErrorCode::kPermissionDenied,
                fmt::format("{} refused replication for {}: {}", primary.name,
                            config.replication.user, error.message));
  }
  return fail(ErrorCode::kUnavailable,
              fmt::format("cannot reach the primary {} at {}:{}: {}", primary.name, primary.host,
                          primary.port, error.message));
}

}  // namespace tandem
