// The files tandem writes into a data directory: tandem.conf (included by postgresql.conf),
// pg_hba.conf and pg_ident.conf, and the libpq password file. Pure text rendering.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/cluster_config.h"

namespace tandem {

inline constexpr char kTandemConfName[] = "tandem.conf";
// Appended to postgresql.conf at init: settings after it would override tandem's.
inline constexpr char kIncludeLine[] = "include_if_exists = 'tandem.conf'";
// pg_ident map that lets the listed OS users log in as the superuser over the Unix socket.
inline constexpr char kIdentMap[] = "tandem";

// Where a standby streams from.
struct Upstream {
  std::string conninfo;  // primary_conninfo, without a password (it uses the passfile)
  std::string slot;      // primary_slot_name
};

// synchronous_standby_names' word for any standby (strict synchronous mode, none named).
inline constexpr char kAnyStandby[] = "*";

// synchronous_standby_names for commits that wait for every one of `standbys`: "node2" quoted
// for one, 'FIRST 2 ("node2","node3")' for two; "" for none. With `any` (quorum commit), for
// any `any` of them: 'ANY 1 ("node2","node3")'.
std::string standby_names_value(const std::vector<std::string>& standbys, int any = 0);
// A synchronous_standby_names of the form ANY k (names): k and the names; nullopt otherwise.
std::optional<std::pair<int, std::vector<std::string>>> parse_quorum_names(std::string_view value);
// What a synchronous_standby_names PostgreSQL reports says every commit waits for: its
// standbys when it waits for all it names, {"*"} when it waits for any or for fewer than it
// names (ANY, or FIRST 1 of two: not every one of them has each commit), {} for none.
std::vector<std::string> parse_standby_names(std::string_view value);

// The node's own settings plus the replication settings every node shares. A standby gets
// primary_conninfo and primary_slot_name; the primary gets none.
// A primary in synchronous mode names its synchronous standbys (empty: none; {"*"}: any).
std::string render_tandem_conf(const ClusterConfig& config, const NodeConfig& node,
                               const std::optional<Upstream>& upstream,
                               const std::vector<std::string>& synchronous_standbys = {},
                               int synchronous_any = 0);

// The cluster's settings (`tandem config set`), which every agent writes into its data
// directory; tandem.conf includes it first, so that tandem's own lines come after it.
inline constexpr char kSettingsConfName[] = "tandem.settings.conf";
std::string render_settings_conf(const std::map<std::string, std::string>& settings,
                                 std::int64_t revision);

// pgBackRest's settings for a node (backup.repository set): the repository, and this node as
// pg1 — archive-push reads its own data directory's pg_control. In the data directory, beside
// tandem.conf, and rewritten with it.
inline constexpr char kPgBackRestConfName[] = "pgbackrest.conf";
inline std::string pgbackrest_conf_path(const NodeConfig& node) {
  return node.data_dir + "/" + kPgBackRestConfName;
}
// With a repository host, it reaches the repository there over TLS, and serves pgBackRest's
// TLS server (which the agent runs) to the repository host alone.
std::string render_pgbackrest_conf(const ClusterConfig& config, const NodeConfig& node);
// pgBackRest's settings on the repository host (backup.repository_host): the repository and
// its TLS server for the nodes.
inline constexpr char kRepositoryConfName[] = "tandem-pgbackrest.conf";
std::string render_repository_conf(const ClusterConfig& config);
// On the repository host's command lines: `node` as pg<index>, reached on its host's TLS server.
std::vector<std::string> remote_pg_args(const ClusterConfig& config, int index,
                                        const NodeConfig& node);
// On a node's host, with no pgbackrest.conf yet: the repository host reached over TLS.
std::vector<std::string> repository_host_args(const ClusterConfig& config);
// The pgBackRest command line of a node's archive_command / restore_command, without the
// command's own arguments: "/usr/bin/pgbackrest --config=DIR/pgbackrest.conf --stanza=S".
std::string pgbackrest_command(const ClusterConfig& config, const NodeConfig& node);

// Replication only for the replication role, from the configured networks, with SCRAM; the
// app role only to its database; the superuser only over the Unix socket through the ident map.
std::string render_pg_hba(const ClusterConfig& config);
std::string render_pg_ident(const ClusterConfig& config, const std::vector<std::string>& os_users);

struct Credential {
  std::string role;
  std::string password;
};
// libpq password file lines ("*:*:*:role:password"), escaping ':' and '\'.
std::string render_passfile(const std::vector<Credential>& credentials);
// The password of `role` in a password file, if present.
std::optional<std::string> find_password(std::string_view passfile, std::string_view role);

// The password libpq would take from a password file for a connection (its first line whose
// fields match, "*" matching anything); nullopt when none does.
struct PgpassKey {
  std::string host;  // as the connection names it ("127.0.0.1", "localhost", a socket directory)
  std::string port;
  std::string database;  // "replication" for a replication connection
  std::string user;
};
std::optional<std::string> pgpass_lookup(std::string_view passfile, const PgpassKey& key);

// The value a postgresql.conf-style file gives `name` (its last line that sets it; quotes and
// escapes undone), nullopt when none does or there is no such file.
std::optional<std::string> conf_string(const std::string& path, std::string_view name);

// The primary_conninfo that tandem.conf in `data_dir` sets, "" when none (or no file).
std::string configured_conninfo(const std::string& data_dir);

// primary_conninfo for a standby of `primary`, as `application_name` (the standby's name).
std::string upstream_conninfo(const ClusterConfig& config, const NodeConfig& primary,
                              const std::string& application_name);

}  // namespace tandem
