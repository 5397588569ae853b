#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/cluster_config.h"

namespace tandem {
namespace {

constexpr char kMinimal[] = R"(
nodes:
  - name: node1
    port: 5432
  - name: node2
    port: 5433
    data_dir: /srv/pg/node2
)";

TEST(ParseConfig, DefaultsAndRelativePaths) {
  auto config = parse_config(kMinimal, "/etc/tandem");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->os_user, "postgres");
  EXPECT_EQ(config->socket_dir, "/etc/tandem/run");
  EXPECT_EQ(config->password_file, "/etc/tandem/tandem.pgpass");
  EXPECT_EQ(config->nodes[0].data_dir, "/etc/tandem/node1");
  EXPECT_EQ(config->nodes[1].data_dir, "/srv/pg/node2");
  EXPECT_EQ(config->nodes[1].host, "127.0.0.1");
  EXPECT_EQ(config->replication.max_slot_wal_keep_size, 1LL << 30);
  EXPECT_EQ(config->replication.wal_retrieve_retry_interval, std::chrono::milliseconds(200));
  EXPECT_FALSE(config->app);
  EXPECT_FALSE(config->backup.enabled());
  // A relative repository is the config file's directory's, as every path.
  auto backed_up =
      parse_config(std::string(kMinimal) + "backup: {repository: backups}\n", "/etc/tandem");
  ASSERT_TRUE(backed_up) << backed_up.error().message;
  EXPECT_EQ(backed_up->backup.repository, "/etc/tandem/backups");
  EXPECT_EQ(backed_up->stanza(), backed_up->name);
}

TEST(ParseConfig, RoundTripsThroughRender) {
  auto config = parse_config(kMinimal, "/etc/tandem");
  ASSERT_TRUE(config);
  config->app = AppConfig{"test_app", "test_app"};
  config->replication.max_slot_wal_keep_size = 64LL << 20;
  config->api = {.token_file = "/etc/tandem/api.token",
                 .tls_cert_file = "/etc/tandem/api.crt",
                 .tls_key_file = "/etc/tandem/api.key"};
  config->nodes[0].api_port = 8008;
  config->callbacks = {.on_stop = "/usr/local/bin/page",
                       .on_role_change = "/usr/local/bin/vip",
                       .timeout = std::chrono::seconds(5)};
  config->backup = {.repository = "/srv/backup", .stanza = "main", .retention_full = 4};
  config->tls = {.cert_file = "/etc/tandem/server.crt",
                 .key_file = "/etc/tandem/server.key",
                 .ca_file = "/etc/tandem/ca.crt"};
  config->ha.synchronous_mode = true;
  config->ha.synchronous_node_count = 2;
  config->ha.synchronous_quorum = true;
  auto again = parse_config(render_config(*config), "/elsewhere");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(render_config(*again), render_config(*config));
  EXPECT_EQ(again->ha.synchronous_node_count, 2);
  EXPECT_TRUE(again->ha.synchronous_quorum);
  EXPECT_EQ(again->callbacks, config->callbacks);
  EXPECT_EQ(again->backup, config->backup);
  EXPECT_EQ(again->tls, config->tls);
  EXPECT_EQ(again->stanza(), "main");
  // A repository host: its TLS is postgresql.tls's when the file says nothing else, and stays
  // left out when written again.
  config->backup.repository_host = "10.0.0.9";
  config->backup.tls = config->tls;
  config->etcd.endpoints = {"http://10.0.0.5:2379"};
  config->nodes[0].host = "10.0.0.1";
  config->nodes[1].host = "10.0.0.2";
  config->nodes[1].api_port = 8008;
  std::string rendered = render_config(*config);
  EXPECT_EQ(rendered.find("cert_file: /etc/tandem/server.crt"),
            rendered.rfind("cert_file: /etc/tandem/server.crt"))
      << rendered;
  again = parse_config(rendered, "/elsewhere");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->backup, config->backup);
  config->backup.tls.cert_file = "/etc/tandem/backrest.crt";
  config->backup.tls_port = 8433;
  again = parse_config(render_config(*config), "/elsewhere");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->backup, config->backup);
  // Relative paths are the config file's directory's.
  auto relative = parse_config(
      "postgresql: {tls: {cert_file: s.crt, key_file: s.key, ca_file: ca.crt}}\n"
      "nodes: [{name: a, port: 1}]",
      "/etc/tandem");
  ASSERT_TRUE(relative) << relative.error().message;
  EXPECT_EQ(relative->tls.ca_file, "/etc/tandem/ca.crt");
}

// The README's config for several machines: a name, an address and a data directory per node and
// the etcd endpoints; everything else defaults.
TEST(ParseConfig, SeveralMachinesNeedLittle) {
  auto config = parse_config(R"(
cluster: prod
etcd:
  endpoints: [http://10.0.0.21:2379, http://10.0.0.22:2379, http://10.0.0.23:2379]
nodes:
  - {name: node1, host: 10.0.0.11, data_dir: /var/lib/tandem/node1}
  - {name: node2, host: 10.0.0.12, data_dir: /var/lib/tandem/node2}
  - {name: node3, host: 10.0.0.13, data_dir: /var/lib/tandem/node3}
)",
                             "/etc/tandem");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_TRUE(config->etcd.enabled());
  EXPECT_EQ(config->etcd.endpoints.size(), 3u);
  for (const NodeConfig& node : config->nodes) {
    EXPECT_EQ(node.port, 5432);
    EXPECT_EQ(node.api_port, 8008);
  }
  EXPECT_EQ(config->replication.networks,
            (std::vector<std::string>{"10.0.0.11/32", "10.0.0.12/32", "10.0.0.13/32"}));
  auto again = parse_config(render_config(*config), "/etc/tandem");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(render_config(*again), render_config(*config));
  // Without etcd, no API unless asked for, and replication from the nodes' addresses.
  auto local = parse_config("nodes: [{name: a, port: 5432}]", "/x");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->nodes[0].api_port, 0);
  EXPECT_EQ(local->replication.networks, std::vector<std::string>{"127.0.0.1/32"});
}

TEST(ParseConfig, RefusesBadInputWithTheKeyNamed) {
  struct Case {
    const char* yaml;
    const char* says;
  };
  const Case cases[] = {
      {"nodes: []", "at least one node"},
      {"replicaton: {}\nnodes: [{name: a, port: 1}]", "unknown key 'replicaton'"},
      {"nodes: [{name: a, port: 1, colour: red}]", "unknown key 'nodes[].colour'"},
      {"nodes: [{name: A-1, port: 1}]", "node name 'A-1'"},
      {"nodes: [{name: a, port: 70000}]", "port 70000"},
      {"nodes: [{name: a, port: x}]", "wrong type"},
      {"nodes: [{name: a, port: 1}, {name: a, port: 2}]", "used twice"},
      {"nodes: [{name: a, port: 1}, {name: b, port: 1}]", "127.0.0.1:1 is used twice"},
      {"nodes: [{name: a, port: 1, api_port: 2}, {name: b, port: 2}]", "127.0.0.1:2 is used twice"},
      {"nodes: [{name: a, port: 1, api_port: 1}]", "differ from port"},
      {"nodes: [{name: a, port: 1, api_port: 70000}]", "api_port 70000"},
      {"api: {tls_cert_file: cert.pem}\nnodes: [{name: a, port: 1}]", "go together"},
      {"api: {token: x}\nnodes: [{name: a, port: 1}]", "token"},
      {"postgresql: {tls: {cert_file: s.crt, key_file: s.key}}\nnodes: [{name: a, port: 1}]",
       "postgresql.tls: cert_file, key_file and ca_file go together"},
      {"postgresql: {tls: {cert: s.crt}}\nnodes: [{name: a, port: 1}]",
       "unknown key 'postgresql.tls.cert'"},
      {"postgresql: {ssl: on}\nnodes: [{name: a, port: 1}]", "unknown key 'postgresql.ssl'"},
      {"ha: {synchronous_mode_strict: true}\nnodes: [{name: a, port: 1}]",
       "ha.synchronous_mode_strict needs ha.synchronous_mode"},
      {"ha: {synchronous_node_count: 2}\nnodes: [{name: a, port: 1}]",
       "ha.synchronous_node_count needs ha.synchronous_mode"},
      {"ha: {synchronous_quorum: true}\nnodes: [{name: a, port: 1}]",
       "ha.synchronous_quorum needs ha.synchronous_mode"},
      {"ha: {synchronous_mode: true, synchronous_node_count: 0}\nnodes: [{name: a, port: 1}]",
       "ha.synchronous_node_count must be at least 1, not 0"},
      {"ha: {synchronous_mode: true, synchronous_node_count: two}\nnodes: [{name: a, port: 1}]",
       "'synchronous_node_count' has a value of the wrong type"},
      {"etcd: {endpoints: [10.0.0.1:2379]}\nnodes: [{name: a, port: 1}]", "must be a URL"},
      {"etcd: {endpoints: [http://e:2379]}\nnodes: [{name: a, port: 1, api_port: 0}]",
       "needs an api_port"},
      {"etcd: {endpoints: [http://e:2379], user: u}\nnodes: [{name: a, port: 1}]",
       "user and password_file go together"},
      {"os_user: root\nnodes: [{name: a, port: 1}]", "PostgreSQL refuses to run as root"},
      {"replication: {networks: [10.0.0.0/33]}\nnodes: [{name: a, port: 1}]", "10.0.0.0/33"},
      {"replication: {networks: [300.0.0.1/32]}\nnodes: [{name: a, port: 1}]", "300.0.0.1/32"},
      {"replication: {networks: [10.0.0/24]}\nnodes: [{name: a, port: 1}]", "10.0.0/24"},
      {"replication: {networks: [10.0.0.1]}\nnodes: [{name: a, port: 1}]", "10.0.0.1"},
      {"replication: {networks: [10.0.0.1/]}\nnodes: [{name: a, port: 1}]", "10.0.0.1/"},
      {"replication: {networks: ['fd00::/1234']}\nnodes: [{name: a, port: 1}]", "fd00::/1234"},
      {"replication: {networks: ['fd0g::/8']}\nnodes: [{name: a, port: 1}]", "fd0g::/8"},
      {"replication: {max_slot_wal_keep_size: 1MB}\nnodes: [{name: a, port: 1}]", "at least 16MB"},
      {"replication: {max_slot_wal_keep_size: lots}\nnodes: [{name: a, port: 1}]", "not a size"},
      {"replication: {wal_retrieve_retry_interval: 5}\nnodes: [{name: a, port: 1}]",
       "not a duration"},
      {"app: {user: replicator}\nnodes: [{name: a, port: 1}]", "must differ"},
      {"nodes: [{name: a, port: 1", "not valid YAML"},
      // Issue 11: a second key is not silently dropped; ranges are checked before any initdb;
      // a host name says it must be an address, not that 'localhost/32' is no network.
      {"cluster: a\ncluster: b\nnodes: [{name: a, port: 1}]", "'cluster' is given twice"},
      {"nodes: [{name: a, port: 1, port: 2}]", "'nodes[].port' is given twice"},
      {"replication: {user: r, user: s}\nnodes: [{name: a, port: 1}]",
       "'replication.user' is given twice"},
      {"replication: {max_wal_senders: 9999999}\nnodes: [{name: a, port: 1}]",
       "replication.max_wal_senders is 9999999: it must be between 1 and 1000"},
      {"replication: {max_replication_slots: 0}\nnodes: [{name: a, port: 1}]",
       "max_replication_slots is 0"},
      // Issue 12: enough WAL senders and slots for the nodes, checked before any initdb.
      {"replication: {max_wal_senders: 3}\nnodes: [{name: a, port: 1}, {name: b, port: 2}, "
       "{name: c, port: 3}]",
       "max_wal_senders is 3, too few for 3 nodes: every standby streams through one and a copy "
       "takes two; set at least 4 (or leave it out: 10)"},
      {"replication: {max_replication_slots: 2}\nnodes: [{name: a, port: 1}, {name: b, port: 2}, "
       "{name: c, port: 3}]",
       "max_replication_slots is 2, too few for 3 nodes"},
      {"nodes: [{name: a, port: 1, host: localhost}]", "host 'localhost' must be an IP address"},
      {"nodes: [{name: a, port: 1, data_dir: /srv/d1}, {name: b, port: 2, data_dir: /srv/./d1/}]",
       "a and b have the same data_dir /srv/d1"},
      {"nodes: [{name: a, port: 1, data_dir: d1}, {name: b, port: 2, data_dir: ./d1/}]",
       "same data_dir"},
      {"nodes: [{name: a, port: 1, data_dir: /srv/d1}, {name: b, port: 2, data_dir: /srv/d1/b}]",
       "the data_dir of b (/srv/d1/b) is inside that of a (/srv/d1)"},
      // Issue 20: callbacks run as root; a relative path would depend on where the agent started.
      {"callbacks: {on_role_change: vip.sh}\nnodes: [{name: a, port: 1}]",
       "callbacks.on_role_change: 'vip.sh' must be an absolute path"},
      {"callbacks: {on_stop: /x, timeout: 0s}\nnodes: [{name: a, port: 1}]",
       "callbacks.timeout must be more than 0"},
      {"callbacks: {on_promote: /x}\nnodes: [{name: a, port: 1}]",
       "unknown key 'callbacks.on_promote'"},
      // Issue 18: backups with pgBackRest.
      {"backup: {repository: /b, retention_full: 0}\nnodes: [{name: a, port: 1}]",
       "backup.retention_full must be between 1 and 999"},
      {"backup: {repository: /b, stanza: 'my stanza'}\nnodes: [{name: a, port: 1}]",
       "backup.stanza 'my stanza' may hold only"},
      {"backup: {repository: /b, pgbackrest: pgbackrest}\nnodes: [{name: a, port: 1}]",
       "backup.pgbackrest 'pgbackrest' must be an absolute path"},
      {"backup: {repository: \"/b'x\"}\nnodes: [{name: a, port: 1}]", "may not hold quotes"},
      {"backup: {repository: /b, schedule: daily}\nnodes: [{name: a, port: 1}]",
       "schedule: 'daily' is not a duration"},
      {"backup: {repository: /b, when: daily}\nnodes: [{name: a, port: 1}]",
       "unknown key 'backup.when'"},
      {"backup: {repository: /b}\netcd: {endpoints: [http://e:2379]}\nnodes: [{name: a, port: 1}]",
       "set backup.repository_host"},
      // Issue 18.1: a repository host.
      {"backup: {repository: /b, repository_host: repo.example}\nnodes: [{name: a, port: 1}]",
       "backup.repository_host 'repo.example' must be the IP address of one host"},
      {"backup: {repository: /b, repository_host: 127.0.0.1}\nnodes: [{name: a, port: 1}]",
       "not a name, loopback, multicast or 0.0.0.0"},
      {"backup: {repository: /b, repository_host: '::'}\nnodes: [{name: a, port: 1}]",
       "not a name, loopback, multicast or 0.0.0.0"},
      {"backup: {repository: /b, repository_host: 10.0.0.9, tls: {cert_file: /c, key_file: /k, "
       "ca_file: /a}}\nnodes: [{name: a, host: 10.0.0.1, port: 1}]",
       "backup.repository_host is for nodes on several machines"},
      {"backup: {repository: /b, repository_host: 10.0.0.9, tls: {cert_file: /c, key_file: /k, "
       "ca_file: /a}}\nnodes: [{name: a, host: 10.0.0.1, port: 8432}]",
       "backup.tls_port 8432 is node a's port too"},
      {"backup: {repository: /b, repository_host: 10.0.0.9, tls: {cert_file: /c, key_file: /k, "
       "ca_file: /a}}\nnodes: [{name: a, host: 10.0.0.1, port: 1}, {name: b, host: 10.0.0.1, "
       "port: 2}]",
       "node b shares the host 10.0.0.1 with another"},
      {"backup: {repository: /b, repository_host: 10.0.0.9}\nnodes: [{name: a, port: 1}]",
       "pgBackRest's TLS needs certificates"},
      {"backup: {repository: /b, repository_host: 10.0.0.9, tls_port: 0, tls: {cert_file: /c, "
       "key_file: /k, ca_file: /a}}\nnodes: [{name: a, port: 1}]",
       "backup.tls_port must be between 1 and 65535"},
      {"backup: {repository: /b, repository_host: 10.0.0.9, tls: {cert_file: /c}}\nnodes: "
       "[{name: a, port: 1}]",
       "pgBackRest's TLS needs certificates"},
      {"backup: {repository: /b, repository_host: 10.0.0.9, tls: {cert_file: /c, key_file: /k, "
       "ca_file: /a, crl: /x}}\nnodes: [{name: a, port: 1}]",
       "unknown key 'backup.tls.crl'"},
      {"backup: {repository: /b, repository_host: 10.0.0.9, tls: {cert_file: \"/c'\", key_file: "
       "/k, ca_file: /a}}\netcd: {endpoints: [http://e:2379]}\nnodes: [{name: a, host: 10.0.0.1, "
       "port: 1, api_port: 8008}]",
       "may not hold quotes"},
      {"backup: {repository: /b, repository_host: 10.0.0.9, tls: {cert_file: /c, key_file: /k, "
       "ca_file: /a}}\nnodes: [{name: a, host: 10.0.0.9, port: 1}]",
       "is node a's address: the repository belongs on a host of its own"},
  };
  for (const Case& c : cases) {
    auto config = parse_config(c.yaml, "/base");
    ASSERT_FALSE(config) << c.yaml;
    EXPECT_NE(config.error().message.find(c.says), std::string::npos)
        << c.yaml << " -> " << config.error().message;
    EXPECT_EQ(config.error().message.find('\n'), std::string::npos) << "one line: " << c.yaml;
  }
}

TEST(ClusterConfig, UnknownNodeListsTheKnownOnes) {
  auto config = parse_config(kMinimal, "/etc/tandem");
  ASSERT_TRUE(config);
  auto node = config->node("node9");
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(node.error().message, "unknown node 'node9': this cluster has node1, node2");
  EXPECT_EQ(config->node("node2").value()->port, 5433);
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

TEST(ParseConfig, HaTimingContradictionsAreRefused) {
  struct Case {
    const char* ha;
    const char* says;  // nullptr: accepted
  };
  const Case cases[] = {
      {"{}", nullptr},
      {"{ttl: 2s, renew_deadline: 1s, loop_interval: 200ms}", nullptr},
      {"{ttl: 1s, renew_deadline: 1s}", "must be shorter than ha.ttl"},
      {"{ttl: 1s, renew_deadline: 900ms}", "no time is left to fence"},
      {"{ttl: 3s, loop_interval: 400ms}", "at least two renewals"},
      {"{loop_interval: 1ms}", "at least 10ms"},
      {"{ttl: 30s, renew_deadline: 20s}", nullptr},  // the stall limit follows: 300 s
      {"{cycle_stall_limit: 10s}", nullptr},
      {"{cycle_stall_limit: 9s}", "must be at least 10 x ha.ttl"},
      {"{ttl: 5}", "not a duration"},
      {"{agent: false}", "unknown key 'ha.agent'"},
  };
  for (const Case& c : cases) {
    std::string yaml = std::string("ha: ") + c.ha + "\nnodes: [{name: a, port: 1}]";
    auto config = parse_config(yaml, "/base");
    if (c.says == nullptr) {
      EXPECT_TRUE(config) << c.ha << ": " << config.error().message;
    } else {
      ASSERT_FALSE(config) << c.ha;
      EXPECT_NE(config.error().message.find(c.says), std::string::npos)
          << c.ha << " -> " << config.error().message;
    }
  }
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

// Left out, the WAL senders and slots grow with the nodes: every standby can be copied at once.
TEST(Config, ReplicationIsSizedForTheNodes) {
  std::string nodes = "nodes: [";
  for (int index = 1; index <= 12; ++index) {
    nodes += fmt::format("{}{{name: n{}, port: {}}}", index == 1 ? "" : ", ", index, index);
  }
  nodes += "]";
  auto config = parse_config(nodes, "/base");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->replication.max_wal_senders, 25);
  EXPECT_EQ(config->replication.max_replication_slots, 13);
  auto three =
      parse_config("nodes: [{name: a, port: 1}, {name: b, port: 2}, {name: c, port: 3}]", "/base");
  ASSERT_TRUE(three);
  EXPECT_EQ(three->replication.max_wal_senders, 10);
  auto chosen =
      parse_config("replication: {max_wal_senders: 7}\nnodes: [{name: a, port: 1}]", "/base");
  ASSERT_TRUE(chosen);
  EXPECT_EQ(chosen->replication.max_wal_senders, 7);
}

}  // namespace

TEST(ClusterConfig, SlotNamesAreLowercaseLettersDigitsAndUnderscores) {
  struct Case {
    std::string_view name;
    bool valid;
  };
  const Case cases[] = {
      {"node2", true},      {"_", true},      {"9lives", true},  {std::string_view("a_b_c"), true},
      {"", false},          {"Node2", false}, {"node-2", false}, {"node 2", false},
      {"n\xc3\xa9", false},
  };
  for (const Case& each : cases) {
    EXPECT_EQ(is_slot_name(each.name), each.valid) << each.name;
  }
  EXPECT_FALSE(is_slot_name(std::string(64, 'a')));
  EXPECT_TRUE(is_slot_name(std::string(63, 'a')));
}

TEST(ParseConfig, NetworksOfBothFamiliesAreAccepted) {
  auto config = parse_config(
      "replication: {networks: [10.0.0.0/8, 192.168.1.7/32, 0.0.0.0/0, 'fd00::/8', '::1/128']}\n"
      "nodes: [{name: a, port: 1}]",
      "/tmp/x");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->replication.networks.size(), 5u);
}

}  // namespace tandem
