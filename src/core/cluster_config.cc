#include "core/cluster_config.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <optional>
#include <set>
#include <vector>

namespace tandem {
namespace {

Status invalid(std::string message) {
  return fail(ErrorCode::kInvalidArgument, std::move(message));
}

// Role and database names tandem creates: plain identifiers need no quoting anywhere. By hand,
// not std::regex: a compiled pattern, kept for the agent's life, held about 20 KiB of its heap.
bool is_identifier(std::string_view name) {
  auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (name.empty() || name.size() > 63 || !(lower(name[0]) || name[0] == '_')) return false;
  return std::ranges::all_of(name.substr(1),
                             [&](char c) { return lower(c) || digit(c) || c == '_'; });
}

// 1 to `most` decimal digits: their value; nullopt for anything else.
std::optional<int> small_number(std::string_view text, std::size_t most) {
  if (text.empty() || text.size() > most) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

// A.B.C.D/N (each of A-D 1-3 digits up to 255, N 1-2 digits up to 32), or hexadecimal digits
// and colons /N (N 1-3 digits).
bool is_cidr(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view address = text.substr(0, slash);
  std::string_view bits = text.substr(slash + 1);
  std::vector<std::optional<int>> octets;
  for (std::size_t start = 0;;) {
    auto dot = address.find('.', start);
    octets.push_back(small_number(address.substr(start, dot - start), 3));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  bool dotted =
      octets.size() == 4 && std::ranges::all_of(octets, [](auto o) { return o.has_value(); });
  if (dotted && small_number(bits, 2)) {
    return std::ranges::all_of(octets, [](auto o) { return *o <= 255; }) &&
           *small_number(bits, 2) <= 32;
  }
  return !address.empty() && small_number(bits, 3) && std::ranges::all_of(address, [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) || c == ':';
  });
}

bool is_ip_address(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// An address one host has and others reach it at: not unspecified, loopback or multicast.
bool is_host_address(const std::string& host) {
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    std::uint32_t address = ntohl(v4.s_addr);
    return address != 0 && (address >> 24) != 127 && (address >> 28) != 0xE;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return !IN6_IS_ADDR_UNSPECIFIED(&v6) && !IN6_IS_ADDR_LOOPBACK(&v6) &&
           !IN6_IS_ADDR_MULTICAST(&v6) && !IN6_IS_ADDR_V4MAPPED(&v6);
  }
  return false;
}

}  // namespace

void place_files_in(ClusterConfig& config, const std::string& dir) {
  config.log_dir = dir + "/log";
  config.password_file = dir + "/tandem.pgpass";
  config.state_file = dir + "/state.json";
  config.store_file = dir + "/store.db";
  config.api.token_file = dir + "/api.token";
}

bool is_slot_name(std::string_view name) {
  return !name.empty() && name.size() <= 63 && std::ranges::all_of(name, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

namespace {

Status validate_node(const NodeConfig& node) {
  if (!is_slot_name(node.name)) {
    return invalid(fmt::format(
        "node name '{}' must be 1-63 characters of a-z, 0-9 and _ (it names a replication slot)",
        node.name));
  }
  if (node.port < 1 || node.port > 65535) {
    return invalid(
        fmt::format("node {}: port {} is not between 1 and 65535", node.name, node.port));
  }
  if (node.data_dir.empty() || node.data_dir.front() != '/') {
    return invalid(fmt::format("node {}: data_dir must be an absolute path", node.name));
  }
  if (node.host.empty()) return invalid(fmt::format("node {}: host is empty", node.name));
  if (!is_ip_address(node.host)) {
    return invalid(fmt::format(
        "node {}: host '{}' must be an IP address such as 127.0.0.1 (it is where PostgreSQL "
        "listens and what pg_hba allows), not a name",
        node.name, node.host));
  }
  if (node.listen.find_first_of("'\\\n") != std::string::npos) {
    return invalid(fmt::format("node {}: listen '{}' may not hold quotes, backslashes or new lines",
                               node.name, node.listen));
  }
  if (node.api_port < 0 || node.api_port > 65535 || node.api_port == node.port) {
    return invalid(fmt::format(
        "node {}: api_port {} must be between 1 and 65535 (0: no API) and differ from port",
        node.name, node.api_port));
  }
  return {};
}

Status validate_nodes(const std::vector<NodeConfig>& nodes) {
  if (nodes.empty()) return invalid("nodes: the cluster needs at least one node");
  std::set<std::string> names, endpoints;
  for (const NodeConfig& node : nodes) {
    if (auto ok = validate_node(node); !ok) return ok;
    if (!names.insert(node.name).second) {
      return invalid(fmt::format("nodes: the name '{}' is used twice", node.name));
    }
    for (int port : {node.port, node.api_port}) {
      if (port != 0 && !endpoints.insert(fmt::format("{}:{}", node.host, port)).second) {
        return invalid(fmt::format("nodes: {}:{} is used twice", node.host, port));
      }
    }
  }
  return validate_data_dirs(nodes);
}

}  // namespace

int default_max_wal_senders(std::size_t nodes) {
  return std::max(10, 2 * static_cast<int>(nodes) + 1);
}

int default_max_replication_slots(std::size_t nodes) {
  return std::max(10, static_cast<int>(nodes) + 1);
}

std::vector<std::string> names_of(const ClusterConfig& config) {
  std::vector<std::string> names;
  for (const NodeConfig& node : config.nodes) names.push_back(node.name);
  return names;
}

bool network_contains(std::string_view network, std::string_view address) {
  auto slash = network.find('/');
  if (slash == std::string_view::npos) return false;
  std::string base(network.substr(0, slash));
  std::string host(address);
  int bits = 0;
  try {
    bits = std::stoi(std::string(network.substr(slash + 1)));
  } catch (const std::exception&) {
    return false;
  }
  unsigned char net[sizeof(in6_addr)] = {};
  unsigned char addr[sizeof(in6_addr)] = {};
  std::size_t size = 0;
  if (inet_pton(AF_INET, base.c_str(), net) == 1 && inet_pton(AF_INET, host.c_str(), addr) == 1) {
    size = 4;
  } else if (inet_pton(AF_INET6, base.c_str(), net) == 1 &&
             inet_pton(AF_INET6, host.c_str(), addr) == 1) {
    size = 16;
  } else {
    return false;
  }
  if (bits < 0 || static_cast<std::size_t>(bits) > size * 8) return false;
  for (std::size_t byte = 0; byte < size && bits > 0; ++byte, bits -= 8) {
    unsigned mask = bits >= 8 ? 0xffU : (0xffU << (8 - bits)) & 0xffU;
    if ((net[byte] & mask) != (addr[byte] & mask)) return false;
  }
  return true;
}

namespace {

Status validate_replication(const ReplicationConfig& replication, std::size_t node_count) {
  if (!is_identifier(replication.user)) {
    return invalid(
        fmt::format("replication.user '{}' must be a lower-case identifier", replication.user));
  }
  if (replication.networks.empty()) {
    return invalid("replication.networks: list at least one network (e.g. 127.0.0.1/32)");
  }
  for (const std::string& network : replication.networks) {
    if (!is_cidr(network)) {
      return invalid(
          fmt::format("replication.networks: '{}' is not a network such as 10.0.0.0/24", network));
    }
  }
  // PostgreSQL starts with at most a few hundred thousand backends in all; far fewer fit in
  // memory. Refused here, not by a server that fails to start after initdb.
  for (const auto& [key, value] : {std::pair{"max_wal_senders", replication.max_wal_senders},
                                   {"max_replication_slots", replication.max_replication_slots}}) {
    if (value < 1 || value > kMaxReplicationConnections) {
      return invalid(fmt::format("replication.{} is {}: it must be between 1 and {}", key, value,
                                 kMaxReplicationConnections));
    }
  }
  // Fewer and a standby cannot stream, or no node can be copied while they all do.
  int nodes = static_cast<int>(node_count);
  if (replication.max_wal_senders < nodes + 1) {
    return invalid(fmt::format(
        "replication.max_wal_senders is {}, too few for {} nodes: every standby streams "
        "through one and a copy takes two; set at least {} (or leave it out: {})",
        replication.max_wal_senders, nodes, nodes + 1, default_max_wal_senders(node_count)));
  }
  if (replication.max_replication_slots < nodes) {
    return invalid(fmt::format(
        "replication.max_replication_slots is {}, too few for {} nodes: every standby has a "
        "slot; set at least {} (or leave it out: {})",
        replication.max_replication_slots, nodes, nodes,
        default_max_replication_slots(node_count)));
  }
  if (replication.wal_retrieve_retry_interval.count() < 1) {
    return invalid("replication.wal_retrieve_retry_interval must be at least 1ms");
  }
  if (replication.max_slot_wal_keep_size < (16LL << 20)) {
    return invalid(
        "replication.max_slot_wal_keep_size must be at least 16MB: without a cap an abandoned "
        "slot fills the disk");
  }
  return {};
}

}  // namespace

std::chrono::milliseconds effective_stall_limit(const HaSettings& ha) {
  if (ha.cycle_stall_limit != std::chrono::milliseconds(0)) return ha.cycle_stall_limit;
  return std::max(std::chrono::milliseconds(60000), 10 * ha.ttl);
}

namespace {

Status validate_ha(const HaSettings& ha) {
  using std::chrono::milliseconds;
  if (ha.loop_interval < milliseconds(10)) return invalid("ha.loop_interval must be at least 10ms");
  if (ha.synchronous_mode_strict && !ha.synchronous_mode) {
    return invalid("ha.synchronous_mode_strict needs ha.synchronous_mode");
  }
  if (ha.synchronous_node_count < 1) {
    return invalid(fmt::format("ha.synchronous_node_count must be at least 1, not {}",
                               ha.synchronous_node_count));
  }
  if (ha.synchronous_quorum && !ha.synchronous_mode) {
    return invalid("ha.synchronous_quorum needs ha.synchronous_mode");
  }
  if (ha.synchronous_node_count != 1 && !ha.synchronous_mode) {
    return invalid("ha.synchronous_node_count needs ha.synchronous_mode");
  }
  if (ha.renew_deadline >= ha.ttl) {
    return invalid(fmt::format(
        "ha.renew_deadline ({} ms) must be shorter than ha.ttl ({} ms): a primary must stop "
        "writing before its lease can expire",
        ha.renew_deadline.count(), ha.ttl.count()));
  }
  if (ha.renew_deadline + 2 * ha.loop_interval > ha.ttl) {
    return invalid(fmt::format(
        "ha.renew_deadline + 2 x ha.loop_interval ({} ms) exceeds ha.ttl ({} ms): no time is "
        "left to fence before the lease expires",
        (ha.renew_deadline + 2 * ha.loop_interval).count(), ha.ttl.count()));
  }
  if (2 * ha.loop_interval > ha.renew_deadline) {
    return invalid(fmt::format(
        "ha.renew_deadline ({} ms) must allow at least two renewals of ha.loop_interval ({} ms)",
        ha.renew_deadline.count(), ha.loop_interval.count()));
  }
  if (ha.cycle_stall_limit != milliseconds(0) && ha.cycle_stall_limit < 10 * ha.ttl) {
    return invalid(fmt::format(
        "ha.cycle_stall_limit ({} ms) must be at least 10 x ha.ttl ({} ms): a leader's cycle "
        "takes that long for a promotion or a restart",
        ha.cycle_stall_limit.count(), (10 * ha.ttl).count()));
  }
  if (ha.maximum_lag_on_failover < 0) return invalid("ha.maximum_lag_on_failover is negative");
  return {};
}

}  // namespace

// pgBackRest's stanza names: letters, digits, '-', '_' and '.'.
bool is_stanza_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::ranges::all_of(name, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
  });
}

// backup.repository_host: one host's address, certificates, one node per host, several
// machines.
Status validate_repository_host(const ClusterConfig& config) {
  const BackupConfig& backup = config.backup;
  if (!backup.remote()) return {};
  if (!is_host_address(backup.repository_host)) {
    return invalid(
        fmt::format("backup.repository_host '{}' must be the IP address of one host (not a name, "
                    "loopback, multicast or 0.0.0.0)",
                    backup.repository_host));
  }
  if (backup.tls_port < 1 || backup.tls_port > 65535) {
    return invalid("backup.tls_port must be between 1 and 65535");
  }
  const PostgresTlsConfig& tls = backup.tls;
  if (!tls.enabled() || tls.key_file.empty() || tls.ca_file.empty()) {
    return invalid(
        "backup.repository_host: pgBackRest's TLS needs certificates: backup.tls (cert_file, "
        "key_file, ca_file) or postgresql.tls");
  }
  std::set<std::string> hosts;
  for (const NodeConfig& node : config.nodes) {
    if (node.host == backup.repository_host) {
      return invalid(
          fmt::format("backup.repository_host {} is node {}'s address: the repository belongs on a "
                      "host of its own, which outlives any node",
                      backup.repository_host, node.name));
    }
    if (!hosts.insert(node.host).second) {
      return invalid(
          fmt::format("backup.repository_host: node {} shares the host {} with another; its one "
                      "pgBackRest TLS server on backup.tls_port serves one node",
                      node.name, node.host));
    }
    if (node.port == backup.tls_port || node.api_port == backup.tls_port) {
      return invalid(
          fmt::format("backup.tls_port {} is node {}'s port too", backup.tls_port, node.name));
    }
  }
  if (!config.on_several_machines()) {
    return invalid(
        "backup.repository_host is for nodes on several machines (etcd); on one machine the "
        "repository is a directory of it: leave repository_host out");
  }
  return {};
}

Status validate_backup(const ClusterConfig& config) {
  const BackupConfig& backup = config.backup;
  if (!backup.enabled()) return {};
  if (!backup.repository.starts_with("/")) {
    return invalid(
        fmt::format("backup.repository '{}' must be an absolute path", backup.repository));
  }
  if (!is_stanza_name(config.stanza())) {
    return invalid(fmt::format(
        "backup.stanza '{}' may hold only letters, digits, '-', '_' and '.' (at most 64)",
        config.stanza()));
  }
  if (backup.retention_full < 1 || backup.retention_full > 999) {
    return invalid("backup.retention_full must be between 1 and 999");
  }
  if (backup.schedule.count() != 0 && (backup.schedule < std::chrono::seconds(5) ||
                                       backup.schedule > std::chrono::hours(24 * 366))) {
    return invalid(
        "backup.schedule must be between 5s and 366d (or left out: no scheduled backups)");
  }
  if (backup.full_every < std::chrono::seconds(5) ||
      (backup.schedule.count() != 0 && backup.full_every < backup.schedule)) {
    return invalid("backup.full_every must be at least 5s and at least backup.schedule");
  }
  if (!backup.pgbackrest.starts_with("/")) {
    return invalid(
        fmt::format("backup.pgbackrest '{}' must be an absolute path", backup.pgbackrest));
  }
  if (config.on_several_machines() && !backup.remote()) {
    return invalid(
        "backup: nodes on several machines reach their repository on a repository host: set "
        "backup.repository_host (its address) and run `tandem repository` there");
  }
  if (auto ok = validate_repository_host(config); !ok) return ok;
  for (const std::string* path : {&backup.repository, &backup.pgbackrest, &backup.tls.cert_file,
                                  &backup.tls.key_file, &backup.tls.ca_file}) {
    if (path->find_first_of("'\"\\$`\n") != std::string::npos) {
      return invalid(fmt::format("backup: '{}' may not hold quotes, '$', '`' or '\\'", *path));
    }
  }
  return {};
}

Status validate_callbacks(const CallbacksConfig& callbacks) {
  for (const auto& [key, path] : {std::pair{"on_start", &callbacks.on_start},
                                  {"on_stop", &callbacks.on_stop},
                                  {"on_role_change", &callbacks.on_role_change},
                                  {"on_restart", &callbacks.on_restart}}) {
    if (!path->empty() && !path->starts_with('/')) {
      return invalid(fmt::format("callbacks.{}: '{}' must be an absolute path", key, *path));
    }
  }
  if (callbacks.timeout <= std::chrono::milliseconds(0) ||
      callbacks.timeout > std::chrono::minutes(10)) {
    return invalid("callbacks.timeout must be more than 0 and at most 10min");
  }
  return {};
}

Status validate_data_dirs(const std::vector<NodeConfig>& nodes) {
  // "d1", "d1/" and "./d1" are one directory; a directory inside another is not a new one.
  auto normal = [](const std::string& path) {
    std::string text = std::filesystem::path(path).lexically_normal().string();
    while (text.size() > 1 && text.back() == '/') text.pop_back();
    return text;
  };
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    for (std::size_t j = i + 1; j < nodes.size(); ++j) {
      std::string a = normal(nodes[i].data_dir), b = normal(nodes[j].data_dir);
      if (a == b) {
        return invalid(fmt::format("nodes: {} and {} have the same data_dir {}", nodes[i].name,
                                   nodes[j].name, a));
      }
      bool a_in_b = a.starts_with(b == "/" ? b : b + "/");
      bool b_in_a = b.starts_with(a == "/" ? a : a + "/");
      if (a_in_b || b_in_a) {
        const NodeConfig& inner = a_in_b ? nodes[i] : nodes[j];
        const NodeConfig& outer = a_in_b ? nodes[j] : nodes[i];
        return invalid(fmt::format("nodes: the data_dir of {} ({}) is inside that of {} ({})",
                                   inner.name, normal(inner.data_dir), outer.name,
                                   normal(outer.data_dir)));
      }
    }
  }
  return {};
}

const NodeConfig* ClusterConfig::find_node(std::string_view node_name) const {
  auto it = std::find_if(nodes.begin(), nodes.end(),
                         [&](const NodeConfig& node) { return node.name == node_name; });
  return it == nodes.end() ? nullptr : &*it;
}

Result<const NodeConfig*> ClusterConfig::node(std::string_view node_name) const {
  if (const NodeConfig* found = find_node(node_name)) return found;
  std::string known;
  for (const NodeConfig& each : nodes) {
    known += known.empty() ? "" : ", ";
    known += each.name;
  }
  return fail(ErrorCode::kNotFound,
              fmt::format("unknown node '{}': this cluster has {}", node_name, known));
}

Status validate(const ClusterConfig& config) {
  if (!is_identifier(config.name)) {
    return invalid(fmt::format("cluster '{}' must be a lower-case identifier", config.name));
  }
  if (config.os_user.empty() || config.os_user == "root") {
    return invalid("os_user must name a non-root OS user: PostgreSQL refuses to run as root");
  }
  if (!is_identifier(config.superuser)) {
    return invalid(fmt::format("superuser '{}' must be a lower-case identifier", config.superuser));
  }
  for (const auto& [key, path] : {std::pair{"socket_dir", &config.socket_dir},
                                  {"log_dir", &config.log_dir},
                                  {"password_file", &config.password_file},
                                  {"state_file", &config.state_file},
                                  {"store_file", &config.store_file}}) {
    if (path->empty() || path->front() != '/') {
      return invalid(fmt::format("paths.{} must be an absolute path", key));
    }
  }
  // A Unix socket path is at most 107 bytes; "/.s.PGSQL.65535" takes 15 of them.
  if (config.socket_dir.size() > 90) {
    return invalid(fmt::format("paths.socket_dir {} is too long for a Unix socket (90 bytes max)",
                               config.socket_dir));
  }
  for (const NodeConfig& node : config.nodes) {
    if (auto ok = validate_node(node); !ok) return ok;
  }
  if (auto ok = validate_replication(config.replication, config.nodes.size()); !ok) return ok;
  if (config.app) {
    if (!is_identifier(config.app->user) || !is_identifier(config.app->database)) {
      return invalid("app.user and app.database must be lower-case identifiers");
    }
    if (config.app->user == config.replication.user || config.app->user == config.superuser) {
      return invalid("app.user must differ from the replication user and the superuser");
    }
  }
  if (config.status.slot_retained_warning <= 0 || config.status.standby_gone_warning.count() <= 0) {
    return invalid("status thresholds must be positive");
  }
  if (auto ok = validate_ha(config.ha); !ok) return ok;
  const ApiConfig& api = config.api;
  if (api.tls_cert_file.empty() != api.tls_key_file.empty()) {
    return invalid("api: tls_cert_file and tls_key_file go together (both or neither)");
  }
  const PostgresTlsConfig& tls = config.tls;
  if (tls.cert_file.empty() != tls.key_file.empty() ||
      tls.cert_file.empty() != tls.ca_file.empty()) {
    return invalid("postgresql.tls: cert_file, key_file and ca_file go together (all or none)");
  }
  if (auto ok = validate_callbacks(config.callbacks); !ok) return ok;
  if (auto ok = validate_backup(config); !ok) return ok;
  if (config.etcd.enabled()) {
    for (const std::string& endpoint : config.etcd.endpoints) {
      if (!endpoint.starts_with("http://") && !endpoint.starts_with("https://")) {
        return invalid(fmt::format(
            "etcd.endpoints: '{}' must be a URL such as http://10.0.0.11:2379", endpoint));
      }
    }
    if (config.etcd.user.empty() != config.etcd.password_file.empty()) {
      return invalid("etcd: user and password_file go together");
    }
    for (const NodeConfig& node : config.nodes) {
      if (node.api_port == 0) {
        return invalid(fmt::format(
            "node {}: with etcd every agent needs an api_port (the agents fence by talking to "
            "each other)",
            node.name));
      }
    }
  }
  return validate_nodes(config.nodes);
}

std::string api_url(const ClusterConfig& config, const NodeConfig& node) {
  if (node.api_port == 0) return "";
  bool tls = !config.api.tls_cert_file.empty();
  return fmt::format("{}://{}:{}", tls ? "https" : "http", node.host, node.api_port);
}

}  // namespace tandem
