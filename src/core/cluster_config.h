// ClusterConfig: what tandem knows about a cluster before it looks at any server — its nodes,
// where their files live, and the replication settings every node shares.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace tandem {

struct NodeConfig {
  std::string name;                // also its replication slot's and application_name's name
  std::string host = "127.0.0.1";  // address it listens on and replicas connect to
  // listen_addresses when it must listen on more than `host` ("*", "127.0.0.1,10.0.0.5"): an
  // adopted server keeps what its clients reach it on. Empty: `host` only.
  std::string listen;
  int port = 5432;
  std::string data_dir;     // absolute
  bool nofailover = false;  // never promoted automatically
  int api_port = 0;         // the agent's HTTP API on host:api_port; 0: no API (8008 with etcd)
};

// Every standby streams through one WAL sender and a copy takes two (pg_basebackup fetches and
// streams): with the defaults, every standby can be copied at once, as agents starting together
// do (8 standbys cloning at once exhausted PostgreSQL's default of 10).
int default_max_wal_senders(std::size_t nodes);
int default_max_replication_slots(std::size_t nodes);

struct ReplicationConfig {
  std::string user = "replicator";
  // Networks (CIDR) from which replication connections are allowed.
  std::vector<std::string> networks = {"127.0.0.1/32"};
  // Left out of tandem.yaml: size_replication() sizes them for the nodes.
  int max_wal_senders = 10;
  int max_replication_slots = 10;
  // How soon a standby retries fetching WAL; PostgreSQL's default of 5 s delays promotions.
  std::chrono::milliseconds wal_retrieve_retry_interval{200};
  // The most WAL a slot may hold back. An abandoned slot is invalidated past it, not the disk.
  std::int64_t max_slot_wal_keep_size = 1LL << 30;
};

// An application role and database to create at init (the walk-through's test_app).
struct AppConfig {
  std::string user;
  std::string database;
};

struct StatusThresholds {
  std::int64_t slot_retained_warning = 512LL << 20;
  std::chrono::milliseconds standby_gone_warning{10 * 60 * 1000};
};

// The agents' timing. Fast by default; validate() refuses settings under which a primary could
// still be writing when its lease expires.
struct HaSettings {
  bool agents = true;  // `tandem local up` runs an agent per node; false: manual operation
  std::chrono::milliseconds loop_interval{100};
  std::chrono::milliseconds ttl{1000};
  std::chrono::milliseconds renew_deadline{600};
  // A leader whose agent's cycle has not run for this long (a call that never returns) stops
  // renewing its lease and stops its PostgreSQL: another node leads. Long enough for the
  // longest step a leader takes in its cycle (a crash recovery, a shutdown checkpoint). 0: the
  // longer of 60 s and 10 x ttl (effective_stall_limit).
  std::chrono::milliseconds cycle_stall_limit{0};
  std::int64_t maximum_lag_on_failover = 16LL << 20;
  // The leader keeps one standby synchronous and only that one may take over: no commit that
  // was acknowledged is lost. Without a streaming standby, writes go on unprotected...
  bool synchronous_mode = false;
  // ...unless strict: then commits wait until a standby streams (synchronous_standby_names
  // '*' whenever no standby is named, a promoted standby's first commit included).
  bool synchronous_mode_strict = false;
  // How many standbys every commit waits for (all of them), once that many stream; any of them
  // may take over. Fewer stream: commits wait for those there are.
  int synchronous_node_count = 1;
  // Quorum commit: commits wait for any synchronous_node_count of every streaming standby
  // (synchronous_standby_names 'ANY k (...)'), so that one standby's crash stops no write; a
  // takeover needs the standbys the record names frozen (docs/ARCHITECTURE.md, "Quorum
  // commit").
  bool synchronous_quorum = false;
};

// ha.cycle_stall_limit, or when unset the longer of 60 s and 10 x ha.ttl.
std::chrono::milliseconds effective_stall_limit(const HaSettings& ha);

// The agents' HTTP API. Reads are open; changes (POST) need the bearer token in token_file.
struct ApiConfig {
  std::string token_file;     // mode 0600; empty or missing: every POST is refused
  std::string tls_cert_file;  // both set: HTTPS instead of HTTP
  std::string tls_key_file;
  // Host names (besides the nodes' addresses and localhost) that browsers may use to reach the
  // API; a request naming any other Host is refused (DNS rebinding).
  std::vector<std::string> allowed_hosts;
};

// Commands the agent runs when its node starts, stops, changes role or is restarted: what moves
// a virtual IP, repoints PgBouncer or pages someone. Each gets EVENT ROLE CLUSTER as arguments
// (on_role_change primary main) and TANDEM_EVENT, TANDEM_ROLE, TANDEM_CLUSTER, TANDEM_NODE in its
// environment; runs as the agent's user, one at a time in order on a thread of its own (never
// in the agent's cycle), killed after `timeout`; its output goes to the agent's log. Empty: none.
struct CallbacksConfig {
  std::string on_start;
  std::string on_stop;
  std::string on_role_change;
  std::string on_restart;
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};

  bool any() const {
    return !on_start.empty() || !on_stop.empty() || !on_role_change.empty() || !on_restart.empty();
  }
  bool operator==(const CallbacksConfig&) const = default;
};

// etcd as the coordination store, for nodes on several machines. With endpoints, the agents use
// it instead of the SQLite file, and fence by contact with each other (docs/ARCHITECTURE.md).
struct EtcdConfig {
  std::vector<std::string> endpoints;  // http://10.0.0.11:2379, https://...
  std::string user;                    // etcd authentication, with the password in password_file
  std::string password_file;           // mode 0600
  std::string ca_file;                 // https: the CA that signed etcd's certificates
  std::string cert_file;               // https: a client certificate and key, if etcd wants one
  std::string key_file;

  bool enabled() const { return !endpoints.empty(); }
};

// TLS for PostgreSQL's own traffic (postgresql.tls): each server serves cert_file (its key in
// key_file, owned by the OS user with mode 0600, or by root with 0640 and the OS user's group,
// as PostgreSQL demands); every connection over TCP that tandem, a standby, pg_basebackup or
// pg_rewind opens checks it against ca_file (sslmode=verify-full: the CA and the node's address
// in the certificate), and pg_hba accepts TCP connections over TLS only (hostssl). The same
// paths on every host, each host's files its own; ca_file readable by the OS user (a standby's
// WAL receiver reads it).
struct PostgresTlsConfig {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  bool enabled() const { return !cert_file.empty(); }
  bool operator==(const PostgresTlsConfig&) const = default;
};

// Backups and the WAL archive, by pgBackRest (Debian's `pgbackrest`). With a repository, the
// primary archives its WAL there, every standby can restore WAL from it, and `tandem backup`
// takes backups from a streaming standby. Nodes on several machines reach it on a repository
// host (repository_host): every host runs pgBackRest's TLS server (each agent its node's, `tandem
// repository` the repository host's), each authenticated by a certificate whose common name is
// its address.
struct BackupConfig {
  std::string repository;  // repo1-path, an absolute directory the OS user may write; "": none
  // The repository host's address: the repository is a directory there, backups are taken
  // there (pgBackRest takes them only where the repository is), the nodes archive to it and
  // restore from it over TLS. "": the repository is on the nodes' own machine.
  std::string repository_host;
  int tls_port = 8432;  // pgBackRest's TLS server on every host (tls-server-port)
  // The certificates pgBackRest's TLS presents and checks, the same paths on every host, each
  // host's own, signed by one CA, common name and subjectAltName its address; left out:
  // postgresql.tls's.
  PostgresTlsConfig tls;
  std::string stanza;      // pgBackRest's name for the cluster; "": the cluster's name
  int retention_full = 2;  // full backups kept (repo1-retention-full); older ones expire
  std::string pgbackrest = "/usr/bin/pgbackrest";
  // Backups taken by the primary's agent: one per `schedule` (0: none), a full one when the last
  // full is `full_every` old, an incremental one otherwise (core/backup_schedule.h).
  std::chrono::milliseconds schedule{0};
  std::chrono::milliseconds full_every{std::chrono::hours(24 * 7)};
  bool enabled() const { return !repository.empty(); }
  bool remote() const { return enabled() && !repository_host.empty(); }
  bool operator==(const BackupConfig&) const = default;
};

// Where the nodes run, named once: everything that differs between the two branches on it.
enum class Topology {
  // One machine: the agents share a SQLite store file; a primary writes while it renews its
  // lease there; admin connections over the Unix socket.
  kOneMachine,
  // Several machines: etcd; the agents ping each other and a primary writes while it renews
  // its lease OR a majority answers it (quorum fencing); admin connections over TCP, as the
  // superuser with its password.
  kSeveralMachines,
};

struct ClusterConfig {
  std::string name = "tandem";
  std::string os_user = "postgres";  // runs every PostgreSQL process and owns every data dir
  std::string pg_bin;                // empty: discover with pg_config or /usr/lib/postgresql
  std::string superuser = "postgres";
  std::string socket_dir;     // Unix-domain socket directory shared by the nodes
  std::string log_dir;        // server logs, one file per node
  std::string password_file;  // libpq passfile with the roles' passwords, mode 0600
  std::string state_file;     // what tandem remembers between commands (slot inactivity)
  std::string store_file;     // the SQLite coordination store of agents on this machine
  ReplicationConfig replication;
  std::optional<AppConfig> app;
  StatusThresholds status;
  HaSettings ha;
  ApiConfig api;
  EtcdConfig etcd;
  CallbacksConfig callbacks;
  BackupConfig backup;
  PostgresTlsConfig tls;  // postgresql.tls in tandem.yaml
  std::vector<NodeConfig> nodes;
  // Several machines: the version of the member list in the store that `nodes` come from (see
  // MemberList); 0 while no member was added or removed at run time (tandem.yaml's nodes).
  // Never in tandem.yaml.
  std::uint64_t member_list = 0;
  // The names on the list before it, while that change is under way (the agents count over
  // both: agent/contact_book.h); empty otherwise. Never in tandem.yaml.
  std::vector<std::string> previous_members;

  // Several machines exactly when etcd is configured.
  Topology topology() const {
    return etcd.enabled() ? Topology::kSeveralMachines : Topology::kOneMachine;
  }
  bool on_several_machines() const { return topology() == Topology::kSeveralMachines; }
  // A cluster of one node has nobody to hand over to, so no watchdog stops its PostgreSQL.
  bool has_watchdog() const { return nodes.size() > 1; }

  // pgBackRest's stanza: backup.stanza, or the cluster's name.
  std::string stanza() const { return backup.stanza.empty() ? name : backup.stanza; }
  // REQUIRES: validate() succeeded. Returns nullptr for an unknown name.
  const NodeConfig* find_node(std::string_view node_name) const;
  // Like find_node, with the error a person sees for a name that is not in the config.
  Result<const NodeConfig*> node(std::string_view node_name) const;
};

// The members of a cluster on several machines, once changed at run time (`tandem member`): kept
// in the store, where every agent reads it, with a version that grows by one with each change.
// The agents count majorities over it (docs/ARCHITECTURE.md, members at run time).
struct MemberList {
  std::uint64_t version = 0;
  std::vector<NodeConfig> nodes;
  std::vector<std::string> previous;  // the names on list version - 1
};

// What an agent last reported running: a list's version and the names on it.
struct MemberListAck {
  std::uint64_t version = 0;
  std::vector<std::string> names;  // sorted
};

// The nodes' names, in the config's order.
std::vector<std::string> names_of(const ClusterConfig& config);

// Whether `address` (an IP address) lies in `network` (CIDR, IPv4 or IPv6).
bool network_contains(std::string_view network, std::string_view address);

// tandem's own files of a cluster kept in one directory: logs, passwords, state, the store, the
// API's token (`tandem local`, `tandem adopt`).
void place_files_in(ClusterConfig& config, const std::string& dir);

// Slot names allow [a-z0-9_], at most 63 characters; a node's name becomes its slot's name.
bool is_slot_name(std::string_view name);

// The URL of a node's agent API ("http://10.0.0.11:8008"; https when the API has TLS); "" for a
// node without one.
std::string api_url(const ClusterConfig& config, const NodeConfig& node);

// The most WAL senders (and slots) a config may ask for.
inline constexpr int kMaxReplicationConnections = 1000;

// Refuses two nodes whose data directories are one (after lexical normalisation: "d1", "./d1/")
// or one inside the other. The caller canonicalises symbolic links first where it can.
Status validate_data_dirs(const std::vector<NodeConfig>& nodes);

// Checks everything that can be checked without touching the machine. The error names the
// offending key and what would be accepted.
Status validate(const ClusterConfig& config);

// Parses tandem.yaml. Relative paths are resolved against base_dir. Unknown keys are errors:
// a misspelt setting must not be silently ignored.
Result<ClusterConfig> parse_config(std::string_view yaml_text, const std::string& base_dir);
std::string render_config(const ClusterConfig& config);

}  // namespace tandem
