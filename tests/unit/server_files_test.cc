#include "pg/server_files.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "pg/connection.h"

namespace tandem {
namespace {

ClusterConfig config_with_app() {
  ClusterConfig config;
  config.socket_dir = "/c/run";
  config.password_file = "/c/tandem.pgpass";
  config.replication.networks = {"127.0.0.1/32", "10.1.0.0/24"};
  config.app = AppConfig{"test_app", "test_app"};
  config.nodes = {{.name = "node1", .port = 5432, .data_dir = "/c/node1"},
                  {.name = "node2", .port = 5433, .data_dir = "/c/node2"}};
  return config;
}

TEST(RenderTandemConf, PrimaryAndStandby) {
  ClusterConfig config = config_with_app();
  std::string primary = render_tandem_conf(config, config.nodes[0], std::nullopt);
  for (const char* line :
       {"port = 5432\n", "wal_level = replica\n", "hot_standby = on\n", "max_wal_senders = 10\n",
        "max_replication_slots = 10\n", "wal_retrieve_retry_interval = '200ms'\n",
        "max_slot_wal_keep_size = '1GB'\n", "unix_socket_directories = '/c/run'\n"}) {
    EXPECT_NE(primary.find(line), std::string::npos) << line;
  }
  EXPECT_EQ(primary.find("primary_conninfo"), std::string::npos);
  std::string standby =
      render_tandem_conf(config, config.nodes[1],
                         Upstream{upstream_conninfo(config, config.nodes[0], "node2"), "node2"});
  EXPECT_NE(standby.find("primary_slot_name = 'node2'"), std::string::npos);
  EXPECT_NE(standby.find("passfile=''/c/tandem.pgpass''"), std::string::npos) << standby;
  EXPECT_EQ(standby.find("password="), std::string::npos);
}

// The agent tells its upstream from tandem.conf while the server starts, and by host AND port:
// nodes on several machines may all listen on 5432.
TEST(ConfiguredConninfo, ReadsBackWhatTandemWroteWithHostAndPort) {
  ClusterConfig config = config_with_app();
  config.password_file = "/c/it's.pgpass";  // a quote, doubled in the file
  config.nodes[0].host = "10.1.0.7";
  config.nodes[1].port = 5432;
  std::string conninfo = upstream_conninfo(config, config.nodes[0], "node2");
  char pattern[] = "/tmp/tandem-conf-XXXXXX";
  std::string dir = mkdtemp(pattern);
  EXPECT_EQ(configured_conninfo(dir), "");  // no file
  std::ofstream(dir + "/tandem.conf")
      << render_tandem_conf(config, config.nodes[1], Upstream{conninfo, "node2"});
  EXPECT_EQ(configured_conninfo(dir), conninfo);
  auto parameters = parse_conninfo(configured_conninfo(dir));
  ASSERT_TRUE(parameters);
  EXPECT_EQ((*parameters)["host"], "10.1.0.7");
  EXPECT_EQ((*parameters)["port"], "5432");
  EXPECT_EQ((*parameters)["passfile"], "/c/it's.pgpass");
  EXPECT_FALSE(parse_conninfo("host='unterminated"));
  std::filesystem::remove_all(dir);
}

TEST(RenderPgHba, ReplicationOnlyForTheRoleFromTheNetworks) {
  std::string hba = render_pg_hba(config_with_app());
  EXPECT_NE(hba.find("host replication replicator 127.0.0.1/32 scram-sha-256"), std::string::npos);
  EXPECT_NE(hba.find("host replication replicator 10.1.0.0/24 scram-sha-256"), std::string::npos);
  EXPECT_NE(hba.find("local all postgres peer map=tandem"), std::string::npos);
  EXPECT_EQ(hba.find("trust"), std::string::npos);
  EXPECT_EQ(hba.find("host replication all"), std::string::npos);
  EXPECT_EQ(hba.find("0.0.0.0/0"), std::string::npos);
}

TEST(RenderPgHba, TheSuperuserOverTcpOnlyWithNodesOnSeveralMachines) {
  ClusterConfig config = config_with_app();
  EXPECT_EQ(render_pg_hba(config).find("host all postgres"), std::string::npos);
  config.etcd.endpoints = {"http://10.1.0.9:2379"};
  std::string hba = render_pg_hba(config);
  EXPECT_NE(hba.find("host all postgres 10.1.0.0/24 scram-sha-256"), std::string::npos) << hba;
  EXPECT_EQ(hba.find("trust"), std::string::npos);
  EXPECT_EQ(hba.find("0.0.0.0/0"), std::string::npos);
}

TEST(Passfile, RoundTripsWithEscapes) {
  std::string passfile = render_passfile({{"replicator", "pa:ss\\word"}, {"test_app", "plain"}});
  EXPECT_EQ(find_password(passfile, "replicator"), "pa:ss\\word");
  EXPECT_EQ(find_password(passfile, "test_app"), "plain");
  EXPECT_EQ(find_password(passfile, "nobody"), std::nullopt);
  EXPECT_NE(passfile.find("*:*:*:replicator:pa\\:ss\\\\word\n"), std::string::npos);
}

}  // namespace
}  // namespace tandem
