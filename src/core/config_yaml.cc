// tandem.yaml <-> ClusterConfig. yaml-cpp reports errors by exceptions; they stop here.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "common/units.h"
#include "core/cluster_config.h"

namespace tandem {
namespace {

// Thrown inside this file only, to unwind out of nested sections with a message.
struct ConfigError {
  std::string message;
};

[[noreturn]] void reject(std::string message) { throw ConfigError{std::move(message)}; }

void check_keys(const YAML::Node& map, std::string_view section,
                std::initializer_list<std::string_view> allowed) {
  if (!map.IsMap()) reject(fmt::format("{} must be a mapping", section));
  std::string prefix = section.empty() ? "" : std::string(section) + ".";
  std::set<std::string> seen;
  for (const auto& entry : map) {
    std::string key = entry.first.as<std::string>();
    // yaml-cpp keeps the first of two equal keys and drops the other without a word.
    if (!seen.insert(key).second) {
      reject(fmt::format("'{}{}' is given twice: keep one", prefix, key));
    }
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      reject(fmt::format("unknown key '{}{}'", prefix, key));
    }
  }
}

template <typename T>
void read(const YAML::Node& map, const char* key, T& target) {
  if (!map[key]) return;
  try {
    target = map[key].as<T>();
  } catch (const YAML::Exception&) {
    reject(fmt::format("'{}' has a value of the wrong type", key));
  }
}

void read_size(const YAML::Node& map, const char* key, std::int64_t& target) {
  if (!map[key]) return;
  auto size = parse_size(map[key].as<std::string>());
  if (!size) reject(fmt::format("{}: {}", key, size.error().message));
  target = *size;
}

void read_duration(const YAML::Node& map, const char* key, std::chrono::milliseconds& target) {
  if (!map[key]) return;
  auto duration = parse_duration(map[key].as<std::string>());
  if (!duration) reject(fmt::format("{}: {}", key, duration.error().message));
  target = *duration;
}

std::string absolute(const std::string& path, const std::string& base_dir) {
  if (path.empty() || path.front() == '/') return path;
  return (std::filesystem::path(base_dir) / path).lexically_normal().string();
}

void read_paths(const YAML::Node& root, ClusterConfig& config) {
  // Defaults live beside the config file, so a directory holds a whole local cluster.
  config.socket_dir = "run";
  config.log_dir = "log";
  config.password_file = "tandem.pgpass";
  config.state_file = "state.json";
  config.store_file = "store.db";
  if (const YAML::Node paths = root["paths"]) {
    check_keys(paths, "paths",
               {"socket_dir", "log_dir", "password_file", "state_file", "store_file"});
    read(paths, "socket_dir", config.socket_dir);
    read(paths, "log_dir", config.log_dir);
    read(paths, "password_file", config.password_file);
    read(paths, "state_file", config.state_file);
    read(paths, "store_file", config.store_file);
  }
}

void read_replication(const YAML::Node& root, ReplicationConfig& replication) {
  const YAML::Node section = root["replication"];
  if (!section) return;
  check_keys(section, "replication",
             {"user", "networks", "max_wal_senders", "max_replication_slots",
              "wal_retrieve_retry_interval", "max_slot_wal_keep_size"});
  read(section, "user", replication.user);
  read(section, "networks", replication.networks);
  read(section, "max_wal_senders", replication.max_wal_senders);
  read(section, "max_replication_slots", replication.max_replication_slots);
  read_duration(section, "wal_retrieve_retry_interval", replication.wal_retrieve_retry_interval);
  read_size(section, "max_slot_wal_keep_size", replication.max_slot_wal_keep_size);
}

void read_nodes(const YAML::Node& root, const std::string& base_dir, ClusterConfig& config) {
  const YAML::Node nodes = root["nodes"];
  if (!nodes) return;
  if (!nodes.IsSequence()) reject("nodes must be a list");
  for (const YAML::Node& entry : nodes) {
    check_keys(entry, "nodes[]",
               {"name", "host", "listen", "port", "data_dir", "nofailover", "api_port"});
    NodeConfig node;
    read(entry, "name", node.name);
    read(entry, "host", node.host);
    read(entry, "listen", node.listen);
    read(entry, "port", node.port);
    read(entry, "data_dir", node.data_dir);
    read(entry, "nofailover", node.nofailover);
    read(entry, "api_port", node.api_port);
    if (node.data_dir.empty()) node.data_dir = node.name;
    node.data_dir = absolute(node.data_dir, base_dir);
    config.nodes.push_back(std::move(node));
  }
}

void read_app_and_status(const YAML::Node& root, ClusterConfig& config) {
  if (const YAML::Node app = root["app"]) {
    check_keys(app, "app", {"user", "database"});
    AppConfig app_config;
    read(app, "user", app_config.user);
    read(app, "database", app_config.database);
    if (app_config.database.empty()) app_config.database = app_config.user;
    config.app = app_config;
  }
  if (const YAML::Node status = root["status"]) {
    check_keys(status, "status", {"slot_retained_warning", "standby_gone_warning"});
    read_size(status, "slot_retained_warning", config.status.slot_retained_warning);
    read_duration(status, "standby_gone_warning", config.status.standby_gone_warning);
  }
}

void read_ha(const YAML::Node& root, HaSettings& ha_settings) {
  const YAML::Node ha = root["ha"];
  if (!ha) return;
  check_keys(ha, "ha",
             {"agents", "loop_interval", "ttl", "renew_deadline", "cycle_stall_limit",
              "maximum_lag_on_failover", "synchronous_mode", "synchronous_mode_strict",
              "synchronous_node_count", "synchronous_quorum"});
  read(ha, "agents", ha_settings.agents);
  read_duration(ha, "loop_interval", ha_settings.loop_interval);
  read_duration(ha, "ttl", ha_settings.ttl);
  read_duration(ha, "renew_deadline", ha_settings.renew_deadline);
  read_duration(ha, "cycle_stall_limit", ha_settings.cycle_stall_limit);
  read_size(ha, "maximum_lag_on_failover", ha_settings.maximum_lag_on_failover);
  read(ha, "synchronous_mode", ha_settings.synchronous_mode);
  read(ha, "synchronous_mode_strict", ha_settings.synchronous_mode_strict);
  read(ha, "synchronous_node_count", ha_settings.synchronous_node_count);
  read(ha, "synchronous_quorum", ha_settings.synchronous_quorum);
}

void read_api(const YAML::Node& root, const std::string& base_dir, ApiConfig& api_config) {
  const YAML::Node api = root["api"];
  if (!api) return;
  check_keys(api, "api", {"token_file", "tls_cert_file", "tls_key_file", "allowed_hosts"});
  read(api, "allowed_hosts", api_config.allowed_hosts);
  read(api, "token_file", api_config.token_file);
  read(api, "tls_cert_file", api_config.tls_cert_file);
  read(api, "tls_key_file", api_config.tls_key_file);
  for (std::string* path :
       {&api_config.token_file, &api_config.tls_cert_file, &api_config.tls_key_file}) {
    if (!path->empty()) *path = absolute(*path, base_dir);
  }
}

void read_postgresql(const YAML::Node& root, const std::string& base_dir, PostgresTlsConfig& tls) {
  const YAML::Node postgresql = root["postgresql"];
  if (!postgresql) return;
  check_keys(postgresql, "postgresql", {"tls"});
  const YAML::Node section = postgresql["tls"];
  if (!section) return;
  check_keys(section, "postgresql.tls", {"cert_file", "key_file", "ca_file"});
  read(section, "cert_file", tls.cert_file);
  read(section, "key_file", tls.key_file);
  read(section, "ca_file", tls.ca_file);
  for (std::string* path : {&tls.cert_file, &tls.key_file, &tls.ca_file}) {
    if (!path->empty()) *path = absolute(*path, base_dir);
  }
}

void read_etcd(const YAML::Node& root, const std::string& base_dir, EtcdConfig& etcd_config) {
  const YAML::Node etcd = root["etcd"];
  if (!etcd) return;
  check_keys(etcd, "etcd",
             {"endpoints", "user", "password_file", "ca_file", "cert_file", "key_file"});
  read(etcd, "endpoints", etcd_config.endpoints);
  read(etcd, "user", etcd_config.user);
  read(etcd, "password_file", etcd_config.password_file);
  read(etcd, "ca_file", etcd_config.ca_file);
  read(etcd, "cert_file", etcd_config.cert_file);
  read(etcd, "key_file", etcd_config.key_file);
  for (std::string* path : {&etcd_config.password_file, &etcd_config.ca_file,
                            &etcd_config.cert_file, &etcd_config.key_file}) {
    if (!path->empty()) *path = absolute(*path, base_dir);
  }
}

// Script paths stay as written (validate wants them absolute: a relative one would depend on
// the directory the agent was started from).
void read_callbacks(const YAML::Node& root, CallbacksConfig& callbacks) {
  const YAML::Node node = root["callbacks"];
  if (!node) return;
  check_keys(node, "callbacks", {"on_start", "on_stop", "on_role_change", "on_restart", "timeout"});
  read(node, "on_start", callbacks.on_start);
  read(node, "on_stop", callbacks.on_stop);
  read(node, "on_role_change", callbacks.on_role_change);
  read(node, "on_restart", callbacks.on_restart);
  read_duration(node, "timeout", callbacks.timeout);
}

void read_backup(const YAML::Node& root, const std::string& base_dir, BackupConfig& backup) {
  const YAML::Node node = root["backup"];
  if (!node) return;
  check_keys(node, "backup",
             {"repository", "stanza", "retention_full", "pgbackrest", "schedule", "full_every",
              "repository_host", "tls_port", "tls"});
  read(node, "repository", backup.repository);
  read(node, "repository_host", backup.repository_host);
  read(node, "tls_port", backup.tls_port);
  if (const YAML::Node tls = node["tls"]) {
    check_keys(tls, "backup.tls", {"cert_file", "key_file", "ca_file"});
    read(tls, "cert_file", backup.tls.cert_file);
    read(tls, "key_file", backup.tls.key_file);
    read(tls, "ca_file", backup.tls.ca_file);
    for (std::string* path : {&backup.tls.cert_file, &backup.tls.key_file, &backup.tls.ca_file}) {
      if (!path->empty()) *path = absolute(*path, base_dir);
    }
  }
  read_duration(node, "schedule", backup.schedule);
  read_duration(node, "full_every", backup.full_every);
  read(node, "stanza", backup.stanza);
  read(node, "retention_full", backup.retention_full);
  read(node, "pgbackrest", backup.pgbackrest);
  if (!backup.repository.empty()) backup.repository = absolute(backup.repository, base_dir);
}

// What the file leaves out and the nodes decide: on several machines every agent serves its
// API on 8008; WAL senders and slots sized for the nodes; replication allowed from the nodes'
// own addresses.
void apply_node_defaults(const YAML::Node& root, ClusterConfig& config) {
  const YAML::Node nodes = root["nodes"];
  for (std::size_t index = 0; index < config.nodes.size(); ++index) {
    if (config.on_several_machines() && !nodes[index]["api_port"]) {
      config.nodes[index].api_port = 8008;
    }
  }
  const YAML::Node replication = root["replication"];
  if (!replication || !replication["max_wal_senders"]) {
    config.replication.max_wal_senders = default_max_wal_senders(config.nodes.size());
  }
  if (!replication || !replication["max_replication_slots"]) {
    config.replication.max_replication_slots = default_max_replication_slots(config.nodes.size());
  }
  if (!replication || !replication["networks"]) {
    std::vector<std::string> networks;
    for (const NodeConfig& node : config.nodes) {
      std::string network = node.host + "/32";
      if (std::find(networks.begin(), networks.end(), network) == networks.end()) {
        networks.push_back(network);
      }
    }
    if (!networks.empty()) config.replication.networks = networks;
  }
}

ClusterConfig read_config(const YAML::Node& root, const std::string& base_dir) {
  check_keys(root, "",
             {"cluster", "os_user", "pg_bin", "superuser", "paths", "replication", "app", "status",
              "ha", "api", "etcd", "callbacks", "backup", "postgresql", "nodes"});
  ClusterConfig config;
  read(root, "cluster", config.name);
  read(root, "os_user", config.os_user);
  read(root, "pg_bin", config.pg_bin);
  read(root, "superuser", config.superuser);
  read_paths(root, config);
  for (std::string* path : {&config.socket_dir, &config.log_dir, &config.password_file,
                            &config.state_file, &config.store_file}) {
    *path = absolute(*path, base_dir);
  }
  read_replication(root, config.replication);
  read_app_and_status(root, config);
  read_ha(root, config.ha);
  read_api(root, base_dir, config.api);
  read_etcd(root, base_dir, config.etcd);
  read_callbacks(root, config.callbacks);
  read_backup(root, base_dir, config.backup);
  read_postgresql(root, base_dir, config.tls);
  // pgBackRest's TLS presents postgresql.tls's certificates unless told otherwise.
  if (config.backup.remote() && !config.backup.tls.enabled()) config.backup.tls = config.tls;
  read_nodes(root, base_dir, config);
  apply_node_defaults(root, config);
  return config;
}

}  // namespace

Result<ClusterConfig> parse_config(std::string_view yaml_text, const std::string& base_dir) {
  ClusterConfig config;
  try {
    YAML::Node root = YAML::Load(std::string(yaml_text));
    if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
    config = read_config(root, base_dir);
  } catch (const ConfigError& error) {
    return fail(ErrorCode::kInvalidArgument, error.message);
  } catch (const YAML::Exception& error) {
    return fail(ErrorCode::kInvalidArgument, fmt::format("not valid YAML: {}", error.msg));
  }
  if (auto ok = validate(config); !ok) return std::unexpected(ok.error());
  return config;
}

namespace {

void emit_paths_and_replication(const ClusterConfig& config, YAML::Emitter& out) {
  out << YAML::Key << "paths" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "socket_dir" << YAML::Value << config.socket_dir;
  out << YAML::Key << "log_dir" << YAML::Value << config.log_dir;
  out << YAML::Key << "password_file" << YAML::Value << config.password_file;
  out << YAML::Key << "state_file" << YAML::Value << config.state_file;
  out << YAML::Key << "store_file" << YAML::Value << config.store_file;
  out << YAML::EndMap;
  const ReplicationConfig& replication = config.replication;
  out << YAML::Key << "replication" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "user" << YAML::Value << replication.user;
  out << YAML::Key << "networks" << YAML::Value << YAML::Flow << replication.networks;
  out << YAML::Key << "max_wal_senders" << YAML::Value << replication.max_wal_senders;
  out << YAML::Key << "max_replication_slots" << YAML::Value << replication.max_replication_slots;
  out << YAML::Key << "wal_retrieve_retry_interval" << YAML::Value
      << format_duration(replication.wal_retrieve_retry_interval);
  out << YAML::Key << "max_slot_wal_keep_size" << YAML::Value
      << format_size_exact(replication.max_slot_wal_keep_size);
  out << YAML::EndMap;
}

void emit_app_status_and_ha(const ClusterConfig& config, YAML::Emitter& out) {
  if (config.app) {
    out << YAML::Key << "app" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "user" << YAML::Value << config.app->user;
    out << YAML::Key << "database" << YAML::Value << config.app->database;
    out << YAML::EndMap;
  }
  out << YAML::Key << "status" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "slot_retained_warning" << YAML::Value
      << format_size_exact(config.status.slot_retained_warning);
  out << YAML::Key << "standby_gone_warning" << YAML::Value
      << format_duration(config.status.standby_gone_warning);
  out << YAML::EndMap;
  out << YAML::Key << "ha" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "agents" << YAML::Value << config.ha.agents;
  out << YAML::Key << "loop_interval" << YAML::Value << format_duration(config.ha.loop_interval);
  out << YAML::Key << "ttl" << YAML::Value << format_duration(config.ha.ttl);
  out << YAML::Key << "renew_deadline" << YAML::Value << format_duration(config.ha.renew_deadline);
  if (config.ha.cycle_stall_limit != std::chrono::milliseconds(0)) {
    out << YAML::Key << "cycle_stall_limit" << YAML::Value
        << format_duration(config.ha.cycle_stall_limit);
  }
  out << YAML::Key << "maximum_lag_on_failover" << YAML::Value
      << format_size_exact(config.ha.maximum_lag_on_failover);
  out << YAML::Key << "synchronous_mode" << YAML::Value << config.ha.synchronous_mode;
  if (config.ha.synchronous_mode_strict) {
    out << YAML::Key << "synchronous_mode_strict" << YAML::Value << true;
  }
  if (config.ha.synchronous_quorum) {
    out << YAML::Key << "synchronous_quorum" << YAML::Value << true;
  }
  if (config.ha.synchronous_node_count != 1) {
    out << YAML::Key << "synchronous_node_count" << YAML::Value << config.ha.synchronous_node_count;
  }
  out << YAML::EndMap;
}

void emit_api_and_etcd(const ClusterConfig& config, YAML::Emitter& out) {
  const ApiConfig& api = config.api;
  if (!api.token_file.empty() || !api.tls_cert_file.empty() || !api.allowed_hosts.empty()) {
    out << YAML::Key << "api" << YAML::Value << YAML::BeginMap;
    if (!api.token_file.empty()) out << YAML::Key << "token_file" << YAML::Value << api.token_file;
    if (!api.tls_cert_file.empty()) {
      out << YAML::Key << "tls_cert_file" << YAML::Value << api.tls_cert_file;
      out << YAML::Key << "tls_key_file" << YAML::Value << api.tls_key_file;
    }
    if (!api.allowed_hosts.empty()) {
      out << YAML::Key << "allowed_hosts" << YAML::Value << YAML::Flow << api.allowed_hosts;
    }
    out << YAML::EndMap;
  }
  const EtcdConfig& etcd = config.etcd;
  if (!etcd.enabled()) return;
  out << YAML::Key << "etcd" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "endpoints" << YAML::Value << YAML::Flow << etcd.endpoints;
  for (const auto& [key, value] : {std::pair{"user", &etcd.user},
                                   {"password_file", &etcd.password_file},
                                   {"ca_file", &etcd.ca_file},
                                   {"cert_file", &etcd.cert_file},
                                   {"key_file", &etcd.key_file}}) {
    if (!value->empty()) out << YAML::Key << key << YAML::Value << *value;
  }
  out << YAML::EndMap;
}

void emit_postgresql(const PostgresTlsConfig& tls, YAML::Emitter& out) {
  if (!tls.enabled()) return;
  out << YAML::Key << "postgresql" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "tls" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "cert_file" << YAML::Value << tls.cert_file;
  out << YAML::Key << "key_file" << YAML::Value << tls.key_file;
  out << YAML::Key << "ca_file" << YAML::Value << tls.ca_file;
  out << YAML::EndMap << YAML::EndMap;
}

void emit_callbacks(const CallbacksConfig& callbacks, YAML::Emitter& out) {
  if (!callbacks.any()) return;
  out << YAML::Key << "callbacks" << YAML::Value << YAML::BeginMap;
  for (const auto& [key, value] : {std::pair{"on_start", &callbacks.on_start},
                                   {"on_stop", &callbacks.on_stop},
                                   {"on_role_change", &callbacks.on_role_change},
                                   {"on_restart", &callbacks.on_restart}}) {
    if (!value->empty()) out << YAML::Key << key << YAML::Value << *value;
  }
  out << YAML::Key << "timeout" << YAML::Value << format_duration(callbacks.timeout);
  out << YAML::EndMap;
}

void emit_backup(const BackupConfig& backup, const PostgresTlsConfig& postgresql_tls,
                 YAML::Emitter& out) {
  if (!backup.enabled()) return;
  out << YAML::Key << "backup" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "repository" << YAML::Value << backup.repository;
  if (backup.remote()) {
    out << YAML::Key << "repository_host" << YAML::Value << backup.repository_host;
    if (backup.tls_port != BackupConfig{}.tls_port) {
      out << YAML::Key << "tls_port" << YAML::Value << backup.tls_port;
    }
    if (backup.tls != postgresql_tls) {
      out << YAML::Key << "tls" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "cert_file" << YAML::Value << backup.tls.cert_file;
      out << YAML::Key << "key_file" << YAML::Value << backup.tls.key_file;
      out << YAML::Key << "ca_file" << YAML::Value << backup.tls.ca_file;
      out << YAML::EndMap;
    }
  }
  if (!backup.stanza.empty()) out << YAML::Key << "stanza" << YAML::Value << backup.stanza;
  out << YAML::Key << "retention_full" << YAML::Value << backup.retention_full;
  if (backup.schedule.count() > 0) {
    out << YAML::Key << "schedule" << YAML::Value << format_duration(backup.schedule);
  }
  if (backup.full_every != BackupConfig{}.full_every) {
    out << YAML::Key << "full_every" << YAML::Value << format_duration(backup.full_every);
  }
  if (backup.pgbackrest != BackupConfig{}.pgbackrest) {
    out << YAML::Key << "pgbackrest" << YAML::Value << backup.pgbackrest;
  }
  out << YAML::EndMap;
}

void emit_nodes(const ClusterConfig& config, YAML::Emitter& out) {
  out << YAML::Key << "nodes" << YAML::Value << YAML::BeginSeq;
  for (const NodeConfig& node : config.nodes) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << node.name;
    out << YAML::Key << "host" << YAML::Value << node.host;
    if (!node.listen.empty()) out << YAML::Key << "listen" << YAML::Value << node.listen;
    out << YAML::Key << "port" << YAML::Value << node.port;
    out << YAML::Key << "data_dir" << YAML::Value << node.data_dir;
    if (node.nofailover) out << YAML::Key << "nofailover" << YAML::Value << true;
    if (node.api_port != 0 || config.on_several_machines()) {
      out << YAML::Key << "api_port" << YAML::Value << node.api_port;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

}  // namespace

std::string render_config(const ClusterConfig& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "cluster" << YAML::Value << config.name;
  out << YAML::Key << "os_user" << YAML::Value << config.os_user;
  if (!config.pg_bin.empty()) out << YAML::Key << "pg_bin" << YAML::Value << config.pg_bin;
  out << YAML::Key << "superuser" << YAML::Value << config.superuser;
  emit_paths_and_replication(config, out);
  emit_app_status_and_ha(config, out);
  emit_api_and_etcd(config, out);
  emit_callbacks(config.callbacks, out);
  emit_backup(config.backup, config.tls, out);
  emit_postgresql(config.tls, out);
  emit_nodes(config, out);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace tandem
