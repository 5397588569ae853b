#include "core/adopt_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace tandem {
namespace {

Status refuse(std::string why) { return fail(ErrorCode::kConflict, std::move(why)); }

// A host in primary_conninfo that reaches this machine: a socket directory, a loopback name or
// address, or none (libpq's default socket).
bool local_host(const std::string& host, const ServerFacts& primary) {
  if (host.empty() || host.front() == '/' || host == "localhost" || host == "::1") return true;
  if (host.starts_with("127.")) return true;
  return host == primary.listen;  // its one address; with "*" an address proves nothing
}

// Where a node listens and is reached: 127.0.0.1 unless it listens on one other address only.
void set_addresses(const ServerFacts& server, NodeConfig& node) {
  node.host = "127.0.0.1";
  bool one_address =
      !server.listen.empty() && server.listen.find_first_of(",* ") == std::string::npos;
  if (one_address && server.listen != "localhost" && !server.listen.starts_with("127.")) {
    node.host = server.listen;
  }
  if (server.listen != node.host) node.listen = server.listen;
}

// What tandem cannot take over yet, or must not take twice.
std::optional<std::string> unsupported(const ServerFacts& server, const AdoptOptions& options) {
  if (!server.config_in_data_dir) {
    return fmt::format(
        "{} has no postgresql.conf: a configuration kept elsewhere (Debian's /etc/postgresql "
        "layout) is not adopted yet",
        server.data_dir);
  }
  if (server.managed_by_tandem && !options.resuming) {
    return fmt::format(
        "{} has a tandem.conf: tandem manages it already (adopt again with the config it was "
        "adopted into, -c FILE)",
        server.data_dir);
  }
  if (!server.socket_dir_usable) {
    return fmt::format(
        "{}'s socket directory '{}' is missing or writable by every user: tandem keeps its "
        "agents' locks there (set unix_socket_directories to a directory of {})",
        server.data_dir, server.socket_dir, server.os_user);
  }
  if (server.wal_level == "logical") {
    return fmt::format(
        "{} runs with wal_level = logical: tandem sets replica, and logical slots would stop it "
        "(not adopted yet)",
        server.data_dir);
  }
  return std::nullopt;
}

// `one`: a single server, on its own host (adopt --node).
Status check_each(const std::vector<ServerFacts>& servers, const AdoptOptions& options,
                  bool one = false) {
  if (servers.size() < 2 && !one) {
    return refuse(
        "tandem adopts a primary and at least one standby streaming from it: name every data "
        "directory");
  }
  for (const ServerFacts& server : servers) {
    if (server.pg_version != options.pg_major) {
      return refuse(fmt::format("{} is PostgreSQL {}, tandem runs PostgreSQL {}", server.data_dir,
                                server.pg_version.empty() ? "?" : server.pg_version,
                                options.pg_major));
    }
    if (!server.running) {
      return refuse(fmt::format("{} is not running: start it, then adopt", server.data_dir));
    }
    if (server.os_user.empty() || server.os_user == "root") {
      return refuse(
          fmt::format("{} belongs to {}: PostgreSQL's data must belong to its own OS user",
                      server.data_dir, server.os_user.empty() ? "nobody" : "root"));
    }
    if (server.os_user != servers.front().os_user) {
      return refuse(fmt::format("{} belongs to {} and {} to {}: one OS user runs every node",
                                servers.front().data_dir, servers.front().os_user, server.data_dir,
                                server.os_user));
    }
    if (auto why = unsupported(server, options)) return refuse(*why);
    if (server.system_identifier != servers.front().system_identifier) {
      return refuse(
          fmt::format("{} (system identifier {}) and {} ({}) are not copies of one cluster",
                      servers.front().data_dir, servers.front().system_identifier, server.data_dir,
                      server.system_identifier));
    }
  }
  return {};
}

Result<std::size_t> find_primary(const std::vector<ServerFacts>& servers) {
  std::vector<std::size_t> primaries;
  for (std::size_t index = 0; index < servers.size(); ++index) {
    if (!servers[index].standby) primaries.push_back(index);
  }
  if (primaries.size() != 1) {
    return std::unexpected(
        refuse(primaries.empty()
                   ? std::string("every server is a standby (standby.signal): no primary to adopt")
                   : fmt::format("{} and {} both run as primaries (no standby.signal)",
                                 servers[primaries[0]].data_dir, servers[primaries[1]].data_dir))
            .error());
  }
  return primaries.front();
}

Status check_upstream(const ServerFacts& standby, const ServerFacts& primary,
                      const std::string& user) {
  auto value = [&](const char* key) {
    auto found = standby.upstream.find(key);
    return found == standby.upstream.end() ? std::string() : found->second;
  };
  std::string port = value("port").empty() ? "5432" : value("port");
  std::string host = value("host").empty() ? value("hostaddr") : value("host");
  if (standby.upstream.empty() || port != std::to_string(primary.port) ||
      !local_host(host, primary)) {
    return refuse(fmt::format(
        "{} does not stream from the primary {} (port {}){}: tandem adopts a primary and the "
        "standbys that stream from it",
        standby.data_dir, primary.data_dir, primary.port,
        standby.upstream.empty() ? " (no primary_conninfo)"
                                 : fmt::format(" but from {}:{}", host, port)));
  }
  if (value("user") != user) {
    return refuse(
        fmt::format("{} replicates as {} and another standby as {}: one replication "
                    "role for every node",
                    standby.data_dir, value("user"), user));
  }
  return {};
}

// Each node's name: given, else a standby's slot (its slot keeps its name), else its
// directory's name.
Result<std::vector<std::string>> node_names(const std::vector<ServerFacts>& servers,
                                            const AdoptOptions& options) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (std::size_t index = 0; index < servers.size(); ++index) {
    std::string name = index < options.names.size() ? options.names[index] : "";
    if (name.empty()) {
      name = servers[index].standby && is_slot_name(servers[index].slot)
                 ? servers[index].slot
                 : node_name_from_dir(servers[index].data_dir);
    }
    if (!is_slot_name(name)) {
      return std::unexpected(
          refuse(fmt::format("{} would be node '{}', which is not a name of [a-z0-9_] (name it "
                             "with --names)",
                             servers[index].data_dir, name))
              .error());
    }
    if (!seen.insert(name).second) {
      return std::unexpected(
          refuse(fmt::format("two nodes would be named {}: name them with --names", name)).error());
    }
    names.push_back(name);
  }
  return names;
}

ClusterConfig base_config(const ServerFacts& primary, const AdoptOptions& options) {
  ClusterConfig config;
  config.name = options.cluster_name;
  config.os_user = primary.os_user;
  config.socket_dir = primary.socket_dir;
  place_files_in(config, options.dir);
  return config;
}

}  // namespace

Result<NodeAdoption> plan_node_adoption(const ClusterConfig& config, const std::string& name,
                                        const ServerFacts& server, const std::string& pg_major) {
  if (!config.on_several_machines()) {
    return std::unexpected(
        refuse("adopt --node is for nodes on several machines (etcd in the config); on one "
               "machine name the data directories")
            .error());
  }
  const NodeConfig* node = config.find_node(name);
  if (node == nullptr) {
    return std::unexpected(refuse(fmt::format("the config lists no node {}", name)).error());
  }
  AdoptOptions options{.pg_major = pg_major, .resuming = true};
  if (auto ok = check_each({server}, options, /*one=*/true); !ok) {
    return std::unexpected(ok.error());
  }
  if (server.os_user != config.os_user) {
    return std::unexpected(refuse(fmt::format("{} belongs to {}, and the config's os_user is {}",
                                              server.data_dir, server.os_user, config.os_user))
                               .error());
  }
  if (server.port != node->port) {
    return std::unexpected(
        refuse(fmt::format("{} listens on port {}, and the config gives {} port {}",
                           server.data_dir, server.port, name, node->port))
            .error());
  }
  NodeAdoption adoption{.standby = server.standby, .without_checksums = !server.data_checksums};
  if (!server.standby) return adoption;
  auto value = [&](const char* key) {
    auto found = server.upstream.find(key);
    return found == server.upstream.end() ? std::string() : found->second;
  };
  std::string host = value("host").empty() ? value("hostaddr") : value("host");
  std::string port = value("port").empty() ? "5432" : value("port");
  for (const NodeConfig& other : config.nodes) {
    if (other.name != name && other.host == host && std::to_string(other.port) == port) {
      adoption.upstream = other.name;
    }
  }
  if (adoption.upstream.empty()) {
    return std::unexpected(
        refuse(server.upstream.empty()
                   ? fmt::format("{} is a standby streaming from nobody (no primary_conninfo)",
                                 server.data_dir)
                   : fmt::format("{} streams from {}:{}, which is no other node of the config",
                                 server.data_dir, host, port))
            .error());
  }
  if (value("user") != config.replication.user) {
    return std::unexpected(
        refuse(fmt::format("{} replicates as '{}', and the config's replication.user is '{}'",
                           server.data_dir, value("user"), config.replication.user))
            .error());
  }
  if (!value("password").empty()) adoption.replication_password = value("password");
  return adoption;
}

std::string node_name_from_dir(const std::string& data_dir) {
  std::string path = data_dir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::string last = path.substr(path.find_last_of('/') + 1);
  std::string name;
  for (char c : last) {
    char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    name += (std::isalnum(static_cast<unsigned char>(lower)) != 0) ? lower : '_';
  }
  return name.substr(0, 63);
}

Result<AdoptionPlan> plan_adoption(const std::vector<ServerFacts>& servers,
                                   const AdoptOptions& options) {
  if (auto ok = check_each(servers, options); !ok) return std::unexpected(ok.error());
  auto primary_index = find_primary(servers);
  if (!primary_index) return std::unexpected(primary_index.error());
  const ServerFacts& primary = servers[*primary_index];
  std::string user;
  std::optional<std::string> password;
  for (const ServerFacts& server : servers) {
    if (!server.standby) continue;
    if (user.empty()) {
      auto found = server.upstream.find("user");
      user = found == server.upstream.end() ? "" : found->second;
    }
    if (auto ok = check_upstream(server, primary, user); !ok) return std::unexpected(ok.error());
    if (auto found = server.upstream.find("password"); found != server.upstream.end()) {
      password = found->second;
    }
  }
  if (user.empty()) {
    return std::unexpected(
        refuse("the standbys' primary_conninfo names no user: tandem needs the replication role")
            .error());
  }
  auto names = node_names(servers, options);
  if (!names) return std::unexpected(names.error());
  AdoptionPlan plan{.config = base_config(primary, options),
                    .primary = (*names)[*primary_index],
                    .replication_password = password};
  plan.config.replication.user = user;
  int api_port = options.api_base_port != 0 ? options.api_base_port : primary.port + 2576;
  for (std::size_t index = 0; index < servers.size(); ++index) {
    NodeConfig node{.name = (*names)[index],
                    .port = servers[index].port,
                    .data_dir = servers[index].data_dir,
                    .api_port = api_port + static_cast<int>(index)};
    set_addresses(servers[index], node);
    plan.config.nodes.push_back(node);
    if (!servers[index].data_checksums) plan.without_checksums.push_back(node.name);
  }
  // Never fewer WAL senders than a server ran with: a standby refuses to start with fewer than
  // its primary's.
  int senders = default_max_wal_senders(servers.size());
  for (const ServerFacts& server : servers) senders = std::max(senders, server.max_wal_senders);
  plan.config.replication.max_wal_senders = senders;
  plan.config.replication.max_replication_slots = default_max_replication_slots(servers.size());
  if (auto ok = validate(plan.config); !ok) return std::unexpected(ok.error());
  return plan;
}

}  // namespace tandem
