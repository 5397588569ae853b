// What `tandem adopt` makes of the facts of running servers: the config, or the refusal.
#include "core/adopt_plan.h"

#include <gtest/gtest.h>

#include <functional>

namespace tandem {
namespace {

ServerFacts primary() {
  return {.data_dir = "/srv/pg/primary",
          .pg_version = "15",
          .os_user = "postgres",
          .running = true,
          .port = 5432,
          .socket_dir = "/var/run/postgresql",
          .socket_dir_usable = true,
          .listen = "127.0.0.1",
          .config_in_data_dir = true,
          .wal_level = "replica",
          .max_wal_senders = 10,
          .system_identifier = "7300000000000000001",
          .timeline = 3};
}

ServerFacts standby() {
  ServerFacts facts = primary();
  facts.data_dir = "/srv/pg/standby";
  facts.port = 5433;
  facts.standby = true;
  facts.upstream = {
      {"host", "127.0.0.1"}, {"port", "5432"}, {"user", "repl_user"}, {"password", "secret"}};
  facts.slot = "localhost_standby";
  return facts;
}

AdoptOptions options() { return {.dir = "/etc/tandem", .pg_major = "15"}; }

TEST(AdoptPlan, TheWalkthroughsClusterKeepsItsSlotAsTheStandbysName) {
  auto plan = plan_adoption({primary(), standby()}, options());
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->primary, "primary");
  ASSERT_EQ(plan->config.nodes.size(), 2u);
  EXPECT_EQ(plan->config.nodes[1].name, "localhost_standby");
  EXPECT_EQ(plan->config.nodes[1].port, 5433);
  EXPECT_EQ(plan->config.nodes[0].api_port, 8008);
  EXPECT_EQ(plan->config.nodes[1].api_port, 8009);
  EXPECT_EQ(plan->config.replication.user, "repl_user");
  EXPECT_EQ(plan->replication_password, "secret");
  EXPECT_EQ(plan->config.socket_dir, "/var/run/postgresql");
  EXPECT_EQ(plan->config.store_file, "/etc/tandem/store.db");
  EXPECT_EQ(plan->config.os_user, "postgres");
  EXPECT_EQ(plan->config.name, "main");
  EXPECT_EQ(plan->without_checksums, (std::vector<std::string>{"primary", "localhost_standby"}));
  EXPECT_TRUE(plan->config.nodes[0].listen.empty());
}

TEST(AdoptPlan, NamesAddressesAndChecksums) {
  struct Case {
    const char* what;
    std::function<void(ServerFacts&, ServerFacts&, AdoptOptions&)> change;
    std::function<void(const AdoptionPlan&)> check;
  };
  std::vector<Case> cases = {
      {"names given on the command line win",
       [](ServerFacts&, ServerFacts&, AdoptOptions& o) {
         o.names = {"alpha", "beta"};
       },
       [](const AdoptionPlan& p) {
         EXPECT_EQ(p.primary, "alpha");
         EXPECT_EQ(p.config.nodes[1].name, "beta");
       }},
      {"a standby without a slot is named by its directory",
       [](ServerFacts&, ServerFacts& s, AdoptOptions&) {
         s.slot = "";
         s.data_dir = "/srv/PG-Standby.2/";
       },
       [](const AdoptionPlan& p) { EXPECT_EQ(p.config.nodes[1].name, "pg_standby_2"); }},
      {"a server listening everywhere keeps listening everywhere",
       [](ServerFacts& p, ServerFacts&, AdoptOptions&) { p.listen = "*"; },
       [](const AdoptionPlan& p) {
         EXPECT_EQ(p.config.nodes[0].host, "127.0.0.1");
         EXPECT_EQ(p.config.nodes[0].listen, "*");
       }},
      {"a server on one other address is reached there",
       [](ServerFacts& p, ServerFacts& s, AdoptOptions&) {
         p.listen = "10.0.0.5";
         s.upstream["host"] = "10.0.0.5";
       },
       [](const AdoptionPlan& p) {
         EXPECT_EQ(p.config.nodes[0].host, "10.0.0.5");
         EXPECT_TRUE(p.config.nodes[0].listen.empty());
       }},
      {"a standby reaching its primary over the socket, no password",
       [](ServerFacts&, ServerFacts& s, AdoptOptions&) {
         s.upstream = {{"host", "/var/run/postgresql"}, {"user", "repl_user"}};
       },
       [](const AdoptionPlan& p) { EXPECT_FALSE(p.replication_password); }},
      {"checksums on: no restart for wal_log_hints",
       [](ServerFacts& p, ServerFacts& s, AdoptOptions&) {
         p.data_checksums = true;
         s.data_checksums = true;
       },
       [](const AdoptionPlan& p) { EXPECT_TRUE(p.without_checksums.empty()); }},
      {"never fewer WAL senders than a server ran with",
       [](ServerFacts& p, ServerFacts& s, AdoptOptions&) {
         p.max_wal_senders = s.max_wal_senders = 25;
       },
       [](const AdoptionPlan& p) { EXPECT_EQ(p.config.replication.max_wal_senders, 25); }},
      {"an adoption resumed takes servers with tandem.conf",
       [](ServerFacts& p, ServerFacts& s, AdoptOptions& o) {
         p.managed_by_tandem = s.managed_by_tandem = true;
         o.resuming = true;
       },
       [](const AdoptionPlan& p) { EXPECT_EQ(p.primary, "primary"); }},
      {"the API ports asked for",
       [](ServerFacts&, ServerFacts&, AdoptOptions& o) { o.api_base_port = 9100; },
       [](const AdoptionPlan& p) { EXPECT_EQ(p.config.nodes[1].api_port, 9101); }},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    ServerFacts p = primary(), s = standby();
    AdoptOptions o = options();
    each.change(p, s, o);
    auto plan = plan_adoption({p, s}, o);
    ASSERT_TRUE(plan) << plan.error().message;
    each.check(*plan);
  }
}

TEST(AdoptPlan, RefusesWhatItCannotAdoptWithTheReason) {
  struct Case {
    const char* what;
    std::function<void(std::vector<ServerFacts>&, AdoptOptions&)> change;
    const char* says;
  };
  std::vector<Case> cases = {
      {"a lone primary", [](auto& v, auto&) { v.pop_back(); }, "at least one standby"},
      {"another major version", [](auto& v, auto&) { v[1].pg_version = "14"; },
       "is PostgreSQL 14, tandem runs PostgreSQL 15"},
      {"a stopped server", [](auto& v, auto&) { v[1].running = false; }, "is not running"},
      {"data owned by root", [](auto& v, auto&) { v[0].os_user = v[1].os_user = "root"; },
       "belongs to root"},
      {"two owners", [](auto& v, auto&) { v[1].os_user = "alice"; }, "one OS user runs every"},
      {"another cluster", [](auto& v, auto&) { v[1].system_identifier = "42"; },
       "are not copies of one cluster"},
      {"two primaries", [](auto& v, auto&) { v[1].standby = false; }, "both run as primaries"},
      {"no primary", [](auto& v, auto&) { v[0].standby = true; }, "no primary to adopt"},
      {"a standby of another server", [](auto& v, auto&) { v[1].upstream["port"] = "6543"; },
       "does not stream from the primary"},
      {"a standby on another host", [](auto& v, auto&) { v[1].upstream["host"] = "10.9.9.9"; },
       "but from 10.9.9.9:5432"},
      {"a remote upstream, the primary listening everywhere",
       [](auto& v, auto&) {
         v[0].listen = "*";
         v[1].upstream["host"] = "10.9.9.9";
       },
       "but from 10.9.9.9:5432"},
      {"Debian's /etc/postgresql layout", [](auto& v, auto&) { v[1].config_in_data_dir = false; },
       "has no postgresql.conf"},
      {"tandem manages it already", [](auto& v, auto&) { v[0].managed_by_tandem = true; },
       "tandem manages it already"},
      {"sockets in /tmp", [](auto& v, auto&) { v[0].socket_dir_usable = false; },
       "writable by every user"},
      {"logical decoding", [](auto& v, auto&) { v[0].wal_level = "logical"; },
       "wal_level = logical"},
      {"a standby without primary_conninfo", [](auto& v, auto&) { v[1].upstream.clear(); },
       "(no primary_conninfo)"},
      {"no replication user", [](auto& v, auto&) { v[1].upstream.erase("user"); }, "names no user"},
      {"two replication users",
       [](auto& v, auto&) {
         v.push_back(v[1]);
         v[2].data_dir = "/srv/pg/third";
         v[2].slot = "third";
         v[2].upstream["user"] = "other";
       },
       "one replication role"},
      {"a name that is no slot name",
       [](auto&, auto& o) {
         o.names = {"Primary", "b"};
       },
       "not a name of [a-z0-9_]"},
      {"two nodes of one name",
       [](auto&, auto& o) {
         o.names = {"a", "a"};
       },
       "two nodes would be named a"},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    std::vector<ServerFacts> servers = {primary(), standby()};
    AdoptOptions o = options();
    each.change(servers, o);
    auto plan = plan_adoption(servers, o);
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.error().message.find(each.says), std::string::npos) << plan.error().message;
  }
}

// adopt --node on a node's own host (several machines): the config is the person's, the facts
// this host's server.
ClusterConfig hosts_config() {
  ClusterConfig config;
  config.name = "prod";
  config.os_user = "postgres";
  config.etcd.endpoints = {"http://10.0.0.21:2379"};
  config.replication.user = "repl_user";
  config.replication.networks = {"10.0.0.11/32", "10.0.0.12/32"};
  config.nodes = {{.name = "node1", .host = "10.0.0.11", .port = 5432, .data_dir = "/srv/pg1"},
                  {.name = "node2", .host = "10.0.0.12", .port = 5432, .data_dir = "/srv/pg2"}};
  return config;
}
ServerFacts hosts_standby() {
  ServerFacts facts = standby();
  facts.data_dir = "/srv/pg2";
  facts.port = 5432;
  facts.upstream["host"] = "10.0.0.11";
  return facts;
}

TEST(AdoptPlan, ANodeOnItsOwnHost) {
  auto standby_here = plan_node_adoption(hosts_config(), "node2", hosts_standby(), "15");
  ASSERT_TRUE(standby_here) << standby_here.error().message;
  EXPECT_TRUE(standby_here->standby);
  EXPECT_EQ(standby_here->upstream, "node1");
  EXPECT_EQ(standby_here->replication_password, "secret");
  EXPECT_TRUE(standby_here->without_checksums);
  ServerFacts resumed = primary();
  resumed.data_dir = "/srv/pg1";
  resumed.managed_by_tandem = true;  // a second run finds tandem.conf there
  resumed.data_checksums = true;
  auto primary_here = plan_node_adoption(hosts_config(), "node1", resumed, "15");
  ASSERT_TRUE(primary_here) << primary_here.error().message;
  EXPECT_FALSE(primary_here->standby);
  EXPECT_FALSE(primary_here->without_checksums);

  struct Case {
    const char* what;
    std::function<void(ClusterConfig&, ServerFacts&, std::string&)> change;
    const char* says;
  };
  std::vector<Case> cases = {
      {"one machine", [](auto& c, auto&, auto&) { c.etcd.endpoints.clear(); },
       "name the data directories"},
      {"a node the config does not list", [](auto&, auto&, auto& n) { n = "node9"; },
       "lists no node node9"},
      {"another major version", [](auto&, auto& f, auto&) { f.pg_version = "14"; },
       "is PostgreSQL 14"},
      {"not running", [](auto&, auto& f, auto&) { f.running = false; }, "is not running"},
      {"another OS user", [](auto&, auto& f, auto&) { f.os_user = "alice"; },
       "the config's os_user is postgres"},
      {"another port", [](auto&, auto& f, auto&) { f.port = 5433; },
       "listens on port 5433, and the config gives node2 port 5432"},
      {"logical decoding", [](auto&, auto& f, auto&) { f.wal_level = "logical"; },
       "wal_level = logical"},
      {"streaming from a server the config does not list",
       [](auto&, auto& f, auto&) { f.upstream["host"] = "10.0.0.99"; },
       "streams from 10.0.0.99:5432, which is no other node"},
      {"streaming from itself", [](auto&, auto& f, auto&) { f.upstream["host"] = "10.0.0.12"; },
       "which is no other node"},
      {"no primary_conninfo", [](auto&, auto& f, auto&) { f.upstream.clear(); },
       "streaming from nobody"},
      {"another replication role", [](auto&, auto& f, auto&) { f.upstream["user"] = "other"; },
       "replicates as 'other', and the config's replication.user is 'repl_user'"},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    ClusterConfig config = hosts_config();
    ServerFacts facts = hosts_standby();
    std::string name = "node2";
    each.change(config, facts, name);
    auto plan = plan_node_adoption(config, name, facts, "15");
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.error().message.find(each.says), std::string::npos) << plan.error().message;
  }
}

}  // namespace
}  // namespace tandem
