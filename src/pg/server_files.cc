#include "pg/server_files.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/units.h"
#include "pg/admin_connection.h"
#include "pg/connection.h"
#include "proc/detached.h"
#include "proc/safe_file.h"

namespace tandem {
namespace {

// A postgresql.conf string literal: single quotes, embedded quotes doubled and backslashes
// escaped (the server reads a backslash as an escape: a conninfo's \' left as it is would end
// the string early).
std::string quoted(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += c;
    out += c;
  }
  return out + "'";
}

std::string escape_passfile_field(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == ':' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// Splits a passfile line into its five fields, honouring backslash escapes.
std::vector<std::string> passfile_fields(std::string_view line) {
  std::vector<std::string> fields(1);
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size()) {
      fields.back() += line[++i];
    } else if (line[i] == ':') {
      fields.emplace_back();
    } else {
      fields.back() += line[i];
    }
  }
  return fields;
}

// A word for /bin/sh: single-quoted, with embedded single quotes closed, escaped and reopened.
std::string shell_quoted(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// PostgreSQL replaces %p, %f and %r anywhere in a command: a '%' of a path is doubled.
std::string literal(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '%') out += '%';
    out += c;
  }
  return out;
}

// archive_mode = on: the primary archives, and a standby once promoted. Not `always`: pgBackRest
// refuses its check and backups with it, and two nodes pushing the same segment at once make
// one push fail (11 times in 16 segments here, each cleared by PostgreSQL's retry). WAL a primary
// had not archived when it died is archived by the node promoted in its place (ops
// mark_received_wal); pgBackRest runs through `tandem archive-push`, which lets a former primary
// go past its own copy of such a segment (ops archive_push_segment).
std::string archive_settings(const ClusterConfig& config, const NodeConfig& node) {
  if (!config.backup.enabled()) return "";
  std::string command = pgbackrest_command(config, node);
  // The program that writes this file, which runs as root: a user who could change it would
  // be root already. Rewritten at every start, so an upgrade's new path is taken.
  std::string tandem = own_executable();
  if (tandem.empty()) tandem = "/usr/bin/tandem";
  return fmt::format(
      "# WAL archived to pgBackRest's repository {} by the primary; standbys fetch what they\n"
      "# lack from it.\n"
      "archive_mode = on\n"
      "archive_command = {}\n"
      "restore_command = {}\n",
      config.backup.repository,
      quoted(shell_quoted(literal(tandem)) + " archive-push -- " + command + " archive-push %p"),
      quoted(command + " archive-get %f \"%p\""));
}

}  // namespace

std::string pgbackrest_command(const ClusterConfig& config, const NodeConfig& node) {
  return fmt::format("{} --config={} --stanza={}", shell_quoted(literal(config.backup.pgbackrest)),
                     shell_quoted(literal(pgbackrest_conf_path(node))),
                     shell_quoted(literal(config.stanza())));
}

namespace {

// pgBackRest's TLS server on this host: at `address`, taking only the clients named (by their
// certificates' common names, their addresses) and for this stanza only.
std::string tls_server_settings(const ClusterConfig& config, const std::string& address,
                                const std::vector<std::string>& clients) {
  const PostgresTlsConfig& tls = config.backup.tls;
  std::string conf = fmt::format(
      "tls-server-address={}\n"
      "tls-server-port={}\n"
      "tls-server-cert-file={}\n"
      "tls-server-key-file={}\n"
      "tls-server-ca-file={}\n",
      address, config.backup.tls_port, tls.cert_file, tls.key_file, tls.ca_file);
  for (const std::string& client : clients) {
    conf += fmt::format("tls-server-auth={}={}\n", client, config.stanza());
  }
  return conf;
}

// How this host reaches another's TLS server: `prefix` repo1-host or pgN-host.
std::string tls_client_settings(const ClusterConfig& config, const std::string& prefix,
                                const std::string& address) {
  const PostgresTlsConfig& tls = config.backup.tls;
  return fmt::format(
      "{0}={1}\n"
      "{0}-type=tls\n"
      "{0}-port={2}\n"
      "{0}-cert-file={3}\n"
      "{0}-key-file={4}\n"
      "{0}-ca-file={5}\n",
      prefix, address, config.backup.tls_port, tls.cert_file, tls.key_file, tls.ca_file);
}

}  // namespace

std::string render_pgbackrest_conf(const ClusterConfig& config, const NodeConfig& node) {
  std::string global = fmt::format("repo1-path={}\n", config.backup.repository);
  if (config.backup.remote()) {
    // The repository on its host: reached over TLS; this host's server answers it alone.
    global += tls_client_settings(config, "repo1-host", config.backup.repository_host);
    global += tls_server_settings(config, node.host, {config.backup.repository_host});
  } else {
    global += fmt::format("repo1-retention-full={}\n", config.backup.retention_full);
  }
  return fmt::format(
      "# Managed by tandem for node {}: pgBackRest's settings, rewritten at every start.\n"
      "[global]\n"
      "{}"
      "log-path={}\n"
      "lock-path={}/pgbackrest\n"
      "start-fast=y\n"
      "\n"
      "[{}]\n"
      "pg1-path={}\n"
      "pg1-port={}\n"
      "pg1-socket-path={}\n"
      "pg1-user={}\n"
      "{}",
      node.name, global, config.log_dir, config.socket_dir, config.stanza(), node.data_dir,
      node.port, config.socket_dir, config.superuser,
      // A standby's restore_command gives up on an unreachable repository host after 2 s, not
      // pgBackRest's 60: PostgreSQL waits for each one, and asks the archive first for every
      // segment it replays, even one in its pg_wal. Tried: with the repository host down, a new
      // standby did not accept connections in 60 s (at 60 s), in 52 s once (at 5 s).
      // The primary's archive_command after 10 s: its failures show in status sooner (a segment
      // still copies as long as some bytes move every 10 s).
      config.backup.remote() ? "\n[global:archive-get]\nio-timeout=2\n"
                               "\n[global:archive-push]\nio-timeout=10\n"
                             : "");
}

std::string render_repository_conf(const ClusterConfig& config) {
  std::vector<std::string> clients;
  for (const NodeConfig& node : config.nodes) clients.push_back(node.host);
  return fmt::format(
      "# Managed by tandem (tandem repository): pgBackRest's settings on the repository host,\n"
      "# rewritten at every start. The nodes are not listed: tandem names the primary (and the\n"
      "# standby a backup copies from) on each command line, so that a node cut off costs no\n"
      "# wait (pgBackRest tries every listed node, each for up to its io-timeout).\n"
      "[global]\n"
      "repo1-path={}\n"
      "repo1-retention-full={}\n"
      "log-path={}\n"
      "lock-path={}/pgbackrest\n"
      "start-fast=y\n"
      "{}",
      config.backup.repository, config.backup.retention_full, config.log_dir, config.socket_dir,
      tls_server_settings(config, config.backup.repository_host, clients));
}

std::vector<std::string> remote_pg_args(const ClusterConfig& config, int index,
                                        const NodeConfig& node) {
  const PostgresTlsConfig& tls = config.backup.tls;
  std::string pg = fmt::format("--pg{}", index);
  return {pg + "-host=" + node.host,
          pg + "-host-type=tls",
          fmt::format("{}-host-port={}", pg, config.backup.tls_port),
          pg + "-host-cert-file=" + tls.cert_file,
          pg + "-host-key-file=" + tls.key_file,
          pg + "-host-ca-file=" + tls.ca_file,
          pg + "-path=" + node.data_dir,
          fmt::format("{}-port={}", pg, node.port),
          pg + "-socket-path=" + config.socket_dir,
          pg + "-user=" + config.superuser};
}

std::vector<std::string> repository_host_args(const ClusterConfig& config) {
  const PostgresTlsConfig& tls = config.backup.tls;
  return {"--repo1-host=" + config.backup.repository_host,
          "--repo1-host-type=tls",
          fmt::format("--repo1-host-port={}", config.backup.tls_port),
          "--repo1-host-cert-file=" + tls.cert_file,
          "--repo1-host-key-file=" + tls.key_file,
          "--repo1-host-ca-file=" + tls.ca_file};
}

std::string render_settings_conf(const std::map<std::string, std::string>& settings,
                                 std::int64_t revision) {
  std::string conf = fmt::format(
      "# The cluster's settings, written by its agent from the coordination store (revision "
      "{}).\n# Change them with `tandem config set NAME=VALUE`: this file is rewritten.\n",
      revision);
  for (const auto& [name, value] : settings) conf += fmt::format("{} = {}\n", name, quoted(value));
  return conf;
}

std::string standby_names_value(const std::vector<std::string>& standbys, int any) {
  if (standbys.size() == 1 && standbys[0] == kAnyStandby) return kAnyStandby;
  std::string list;
  for (const std::string& name : standbys) list += (list.empty() ? "\"" : ",\"") + name + "\"";
  if (any > 0) return fmt::format("ANY {} ({})", any, list);
  return standbys.size() > 1 ? fmt::format("FIRST {} ({})", standbys.size(), list) : list;
}

namespace {

// "a", "b" (quotes optional) into a, b.
std::vector<std::string> split_names(std::string_view value) {
  std::vector<std::string> names;
  while (!value.empty()) {
    auto comma = value.find(',');
    std::string name(trim(value.substr(0, comma)));
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
      name = name.substr(1, name.size() - 2);
    }
    names.push_back(name);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return names;
}

}  // namespace

std::optional<std::pair<int, std::vector<std::string>>> parse_quorum_names(std::string_view value) {
  value = trim(value);
  auto open = value.find('(');
  auto close = value.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return std::nullopt;
  }
  std::string head(trim(value.substr(0, open)));
  std::ranges::transform(head, head.begin(), [](unsigned char c) { return std::toupper(c); });
  if (!head.starts_with("ANY")) return std::nullopt;
  std::string count(trim(std::string_view(head).substr(3)));
  int any = count.empty() ? 0 : std::atoi(count.c_str());
  if (any < 1) return std::nullopt;
  std::vector<std::string> names = split_names(value.substr(open + 1, close - open - 1));
  if (names.empty() || std::ranges::find(names, kAnyStandby) != names.end() ||
      any > static_cast<int>(names.size())) {
    return std::nullopt;
  }
  return std::pair{any, names};
}

std::vector<std::string> parse_standby_names(std::string_view value) {
  value = trim(value);
  if (value.empty()) return {};
  std::size_t wanted = 1;
  auto open = value.find('(');
  if (open != std::string_view::npos) {
    std::string head(trim(value.substr(0, open)));
    std::ranges::transform(head, head.begin(), [](unsigned char c) { return std::toupper(c); });
    if (head.starts_with("ANY")) return {kAnyStandby};
    if (head.starts_with("FIRST")) head = head.substr(5);
    head = std::string(trim(head));
    wanted = head.empty() ? 1 : std::strtoul(head.c_str(), nullptr, 10);
    auto close = value.rfind(')');
    if (close == std::string_view::npos || close < open) return {kAnyStandby};
    value = value.substr(open + 1, close - open - 1);
  }
  std::vector<std::string> names = split_names(value);
  if (std::ranges::find(names, kAnyStandby) != names.end() || wanted != names.size()) {
    return {kAnyStandby};
  }
  return names;
}

std::string render_tandem_conf(const ClusterConfig& config, const NodeConfig& node,
                               const std::optional<Upstream>& upstream,
                               const std::vector<std::string>& synchronous_standbys,
                               int synchronous_any) {
  const ReplicationConfig& replication = config.replication;
  std::string conf = fmt::format(
      "# Managed by tandem for node {}: rewritten by init, clone, promote and rejoin.\n"
      "# Put your own settings in postgresql.conf, above the line that includes this file.\n"
      "# The cluster's settings (tandem config set) first: the lines below win over them.\n"
      "include_if_exists = '{}'\n"
      "cluster_name = {}\n"
      "listen_addresses = {}\n"
      "port = {}\n"
      "unix_socket_directories = {}\n"
      "password_encryption = 'scram-sha-256'\n"
      "wal_level = replica\n"
      "max_wal_senders = {}\n"
      "max_replication_slots = {}\n"
      "hot_standby = on\n"
      "# pg_rewind needs hint bits in the WAL (implied by data checksums; an adopted cluster\n"
      "# may have none).\n"
      "wal_log_hints = on\n"
      "full_page_writes = on\n"
      "# Before crash recovery, one syncfs() of the data directory's file system rather than an\n"
      "# fsync() of every file in it: a postmaster crash on a busy machine took seconds here.\n"
      "recovery_init_sync_method = syncfs\n"
      "# A standby confirms its position at least every second (10 s by default): a standby\n"
      "# made synchronous in place of a stalled one releases the commits waiting meanwhile by\n"
      "# its next confirmation, which an idle standby sends only at this interval.\n"
      "wal_receiver_status_interval = 1s\n"
      "# This node's own files: a configuration copied from another node (pg_rewind,\n"
      "# pg_basebackup) may name that node's (Patroni writes absolute paths).\n"
      "hba_file = {}\n"
      "ident_file = {}\n"
      "wal_retrieve_retry_interval = {}\n"
      "max_slot_wal_keep_size = {}\n"

      "recovery_target_timeline = 'latest'\n"
      "log_line_prefix = '%m [%p] %q%a '\n",
      node.name, kSettingsConfName, quoted(node.name),
      quoted(node.listen.empty() ? node.host : node.listen), node.port, quoted(config.socket_dir),
      replication.max_wal_senders, replication.max_replication_slots,
      quoted(node.data_dir + "/pg_hba.conf"), quoted(node.data_dir + "/pg_ident.conf"),
      quoted(format_duration(replication.wal_retrieve_retry_interval)),
      quoted(format_size_exact(replication.max_slot_wal_keep_size)));
  conf += archive_settings(config, node);
  bool strict = config.ha.synchronous_mode && config.ha.synchronous_mode_strict;
  if (strict && synchronous_standbys.empty()) {
    // Strict synchronous mode with no standby named: a commit waits until any standby has
    // flushed it. A standby's own file says so too: promoted, its first commit waits.
    conf += fmt::format("synchronous_standby_names = '{}'\n", kAnyStandby);
  } else if (!synchronous_standbys.empty()) {
    // A commit returns once every one of these standbys has flushed it (or any, for "*").
    conf += fmt::format("synchronous_standby_names = {}\n",
                        quoted(standby_names_value(synchronous_standbys, synchronous_any)));
  }
  if (config.tls.enabled()) {
    conf += fmt::format(
        "# postgresql.tls: TLS for every connection over TCP (pg_hba takes no other).\n"
        "ssl = on\nssl_cert_file = {}\nssl_key_file = {}\n",
        quoted(config.tls.cert_file), quoted(config.tls.key_file));
  }
  if (upstream) {
    conf += fmt::format("primary_conninfo = {}\nprimary_slot_name = {}\n",
                        quoted(upstream->conninfo), quoted(upstream->slot));
  }
  return conf;
}

std::string render_pg_hba(const ClusterConfig& config) {
  std::string hba =
      "# Managed by tandem. TYPE, DATABASE, USER, ADDRESS, METHOD.\n"
      "# The superuser only over the Unix socket, as the OS users of the pg_ident map.\n";
  hba += fmt::format("local all {} peer map={}\n", config.superuser, kIdentMap);
  // With postgresql.tls, connections over TCP only over TLS: no line takes any other.
  std::string_view host = config.tls.enabled() ? "hostssl" : "host";
  if (config.app) {
    hba += fmt::format("local {} {} scram-sha-256\n", config.app->database, config.app->user);
  }
  hba += "# Replication only for the replication role, from the configured networks.\n";
  for (const std::string& network : config.replication.networks) {
    hba +=
        fmt::format("{} replication {} {} scram-sha-256\n", host, config.replication.user, network);
  }
  if (config.app) {
    for (const std::string& network : config.replication.networks) {
      hba += fmt::format("{} {} {} {} scram-sha-256\n", host, config.app->database,
                         config.app->user, network);
    }
  }
  if (config.on_several_machines()) {
    hba +=
        "# Nodes on several machines: the superuser also from the nodes' networks, with its\n"
        "# password (pg_rewind from the primary, slots, checks from the other agents).\n";
    for (const std::string& network : config.replication.networks) {
      hba += fmt::format("{} all {} {} scram-sha-256\n", host, config.superuser, network);
    }
  }
  if (config.backup.remote()) {
    // Its backups start with a checkpoint of a freshly promoted primary (ops/backup.h).
    hba += "# The repository host: the superuser, with its password, before its backups.\n";
    hba += fmt::format("{} postgres {} {}/{} scram-sha-256\n", host, config.superuser,
                       config.backup.repository_host,
                       config.backup.repository_host.find(':') == std::string::npos ? 32 : 128);
  }
  return hba;
}

std::string render_pg_ident(const ClusterConfig& config, const std::vector<std::string>& os_users) {
  std::string ident = "# Managed by tandem. MAPNAME, SYSTEM-USERNAME, PG-USERNAME.\n";
  for (const std::string& os_user : os_users) {
    ident += fmt::format("{} {} {}\n", kIdentMap, os_user, config.superuser);
  }
  return ident;
}

std::string render_passfile(const std::vector<Credential>& credentials) {
  std::string passfile = "# hostname:port:database:username:password, written by tandem\n";
  for (const Credential& credential : credentials) {
    passfile += fmt::format("*:*:*:{}:{}\n", escape_passfile_field(credential.role),
                            escape_passfile_field(credential.password));
  }
  return passfile;
}

std::optional<std::string> find_password(std::string_view passfile, std::string_view role) {
  while (!passfile.empty()) {
    std::size_t newline = passfile.find('\n');
    std::string_view line = passfile.substr(0, newline);
    passfile.remove_prefix(newline == std::string_view::npos ? passfile.size() : newline + 1);
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string> fields = passfile_fields(line);
    if (fields.size() == 5 && fields[3] == role) return fields[4];
  }
  return std::nullopt;
}

std::optional<std::string> pgpass_lookup(std::string_view passfile, const PgpassKey& key) {
  auto matches = [](const std::string& field, const std::string& value) {
    return field == "*" || field == value;
  };
  while (!passfile.empty()) {
    std::size_t newline = passfile.find('\n');
    std::string_view line = passfile.substr(0, newline);
    passfile.remove_prefix(newline == std::string_view::npos ? passfile.size() : newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string> fields = passfile_fields(line);
    if (fields.size() == 5 && matches(fields[0], key.host) && matches(fields[1], key.port) &&
        matches(fields[2], key.database) && matches(fields[3], key.user)) {
      return fields[4];  // the first line that matches, as libpq takes it
    }
  }
  return std::nullopt;
}

std::optional<std::string> conf_string(const std::string& path, std::string_view name) {
  // In a directory of the OS user: never through a link planted there (adopt copies a password
  // it finds into tandem's password file).
  auto text = read_file_nofollow(path);
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::optional<std::string> found;
  for (std::string line; std::getline(in, line);) {
    std::string_view rest(line);
    auto skip_blanks = [&] {
      while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
    };
    skip_blanks();
    if (!rest.starts_with(name)) continue;
    rest.remove_prefix(name.size());
    if (!rest.empty() && rest.front() != ' ' && rest.front() != '\t' && rest.front() != '=') {
      continue;  // a longer name
    }
    skip_blanks();
    if (rest.starts_with('=')) rest.remove_prefix(1);
    skip_blanks();
    std::string value;
    if (rest.starts_with('\'')) {
      // Quoted: '' or \' is a quote, \\ a backslash; the value ends at the lone quote.
      bool closed = false;
      for (std::size_t i = 1; i < rest.size(); ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) {
          value += rest[++i];
        } else if (rest[i] == '\'' && i + 1 < rest.size() && rest[i + 1] == '\'') {
          value += rest[++i];
        } else if (rest[i] == '\'') {
          closed = true;
          break;
        } else {
          value += rest[i];
        }
      }
      if (!closed) continue;
    } else {
      while (!rest.empty() && rest.front() != ' ' && rest.front() != '\t' && rest.front() != '#') {
        value += rest.front();
        rest.remove_prefix(1);
      }
    }
    found = value;
  }
  return found;
}

std::string configured_conninfo(const std::string& data_dir) {
  return conf_string(data_dir + "/" + kTandemConfName, "primary_conninfo").value_or("");
}

std::string upstream_conninfo(const ClusterConfig& config, const NodeConfig& primary,
                              const std::string& application_name) {
  return make_conninfo(with_tls(config, {{"host", primary.host},
                                         {"port", std::to_string(primary.port)},
                                         {"user", config.replication.user},
                                         {"passfile", config.password_file},
                                         {"application_name", application_name},
                                         {"connect_timeout", "2"}}));
}

}  // namespace tandem
