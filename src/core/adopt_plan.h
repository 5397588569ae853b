// `tandem adopt`: what tandem makes of running servers it did not create — which one is the
// primary, what each node is called, the config that describes them — or why it refuses them.
// Pure: the facts are read by the caller (files of each data directory, nothing over SQL).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "core/cluster_config.h"
#include "core/timeline.h"

namespace tandem {

// What a data directory and its postmaster.pid say about a server.
struct ServerFacts {
  std::string data_dir;             // absolute
  std::string pg_version;           // PG_VERSION: the major version ("15")
  std::string os_user;              // owner of the data directory
  bool running = false;             // a live postmaster in postmaster.pid
  int port = 0;                     // postmaster.pid
  std::string socket_dir;           // postmaster.pid (the first socket directory)
  bool socket_dir_usable = false;   // exists, and not writable by every user (/tmp)
  std::string listen;               // listen_addresses in its configuration files
  bool config_in_data_dir = false;  // postgresql.conf there (not Debian's /etc/postgresql)
  bool managed_by_tandem = false;   // tandem.conf there: adopted (or made) by tandem already
  bool patroni_files = false;       // patroni.dynamic.json there: Patroni managed it
  std::string wal_level;            // pg_controldata: the one it last ran with
  int max_wal_senders = 0;          // pg_controldata
  bool standby = false;             // standby.signal
  std::string system_identifier;
  bool data_checksums = false;
  TimelineId timeline = 0;  // of its last checkpoint
  // A standby's primary_conninfo as libpq parses it (pg_basebackup -R writes it to
  // postgresql.auto.conf), and its primary_slot_name; empty on a primary.
  std::map<std::string, std::string> upstream;
  std::string slot;
};

struct AdoptOptions {
  std::string dir;  // absolute: tandem.yaml, the store, logs, passwords
  std::string cluster_name = "main";
  std::vector<std::string> names;  // one per server, in order; "" or absent: derived
  int api_base_port = 0;           // 0: the primary's port + 2576
  std::string pg_major;            // of tandem's PostgreSQL programs
  // The servers are those of the config already at the path: an adoption resumed, so servers
  // with tandem.conf are expected.
  bool resuming = false;
};

struct AdoptionPlan {
  ClusterConfig config;
  std::string primary;  // the node that runs as primary
  // The replication role's password, when a standby's primary_conninfo carries one (it goes
  // to tandem's password file: tandem's primary_conninfo never holds one).
  std::optional<std::string> replication_password;
  // Nodes without data checksums: pg_rewind needs wal_log_hints there, which takes a restart.
  std::vector<std::string> without_checksums;
};

// The config of the adopted cluster, or the reason one of the servers cannot be adopted (one
// line, naming it). Refused: fewer than two servers, one not running, another major version, a
// root-owned or differently owned data directory, servers of different clusters (system
// identifiers), not exactly one primary, a standby streaming from anywhere but the primary, or
// two nodes that would share a name.
Result<AdoptionPlan> plan_adoption(const std::vector<ServerFacts>& servers,
                                   const AdoptOptions& options);

// `tandem adopt --node NAME` on the node's own host (nodes on several machines): what the
// config's node is as its server runs, or why it cannot be adopted.
struct NodeAdoption {
  bool standby = false;
  std::string upstream;  // a standby's primary: the config's node its primary_conninfo names
  // The replication role's password, when the standby's primary_conninfo carries one.
  std::optional<std::string> replication_password;
  bool without_checksums = false;
};
// Refused: a config without etcd, a node it does not list, a server not running, of another
// major version or OS user, unsupported (as plan_adoption), on another port than the config's,
// a standby streaming from no node of the config (or from itself), as another role than
// replication.user.
Result<NodeAdoption> plan_node_adoption(const ClusterConfig& config, const std::string& name,
                                        const ServerFacts& server, const std::string& pg_major);

// A node name from a data directory's last component: lower case, anything but [a-z0-9_] as _.
std::string node_name_from_dir(const std::string& data_dir);

}  // namespace tandem
