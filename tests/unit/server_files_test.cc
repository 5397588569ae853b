#include "pg/server_files.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "pg/admin_connection.h"
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
        "max_slot_wal_keep_size = '1GB'\n", "unix_socket_directories = '/c/run'\n",
        "recovery_init_sync_method = syncfs\n"}) {
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

// ha.synchronous_mode_strict: with nobody named, any standby is waited for — on a primary and
// in a standby's own file (promoted, its first commit waits) — but not at a new cluster's first
// start, which creates its roles with no standby to wait for (ops/init).
TEST(RenderTandemConf, StrictSynchronousModeWaitsForAnyStandby) {
  ClusterConfig config = config_with_app();
  config.ha.synchronous_mode = true;
  EXPECT_EQ(render_tandem_conf(config, config.nodes[0], std::nullopt).find("synchronous_standby"),
            std::string::npos);
  config.ha.synchronous_mode_strict = true;
  Upstream upstream{upstream_conninfo(config, config.nodes[0], "node2"), "node2"};
  for (const std::string& conf :
       {render_tandem_conf(config, config.nodes[0], std::nullopt),
        render_tandem_conf(config, config.nodes[1], upstream),
        render_tandem_conf(config, config.nodes[0], std::nullopt, {"*"})}) {
    EXPECT_NE(conf.find("synchronous_standby_names = '*'\n"), std::string::npos) << conf;
  }
  EXPECT_NE(render_tandem_conf(config, config.nodes[0], std::nullopt, {"node2"})
                .find("synchronous_standby_names = '\"node2\"'\n"),
            std::string::npos);
  // ha.synchronous_node_count 2: every commit waits for both.
  EXPECT_NE(render_tandem_conf(config, config.nodes[0], std::nullopt, {"node2", "node3"})
                .find("synchronous_standby_names = 'FIRST 2 (\"node2\",\"node3\")'\n"),
            std::string::npos);
}

// What PostgreSQL reports back, read as the standbys every commit waits for: anything that
// does not wait for every standby it names reads as "*", which no record may be made from.
TEST(StandbyNames, ReadsBackWhatEveryCommitWaitsFor) {
  struct Case {
    const char* value;
    std::vector<std::string> standbys;
  };
  std::vector<Case> cases = {
      {"", {}},
      {"*", {"*"}},
      {"\"node2\"", {"node2"}},
      {"node2", {"node2"}},
      {"FIRST 2 (\"node2\",\"node3\")", {"node2", "node3"}},
      {"2 (node2, node3)", {"node2", "node3"}},
      {"first 2 ( \"node2\" , node3 )", {"node2", "node3"}},
      {"FIRST 1 (node2, node3)", {"*"}},
      {"node2, node3", {"*"}},
      {"ANY 2 (node2, node3)", {"*"}},
      {"2 (node2, *)", {"*"}},
      {"2 (node2", {"*"}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(parse_standby_names(c.value), c.standbys) << c.value;
  }
  for (const std::vector<std::string>& standbys :
       {std::vector<std::string>{"node2"}, {"node2", "node3"}, {"a", "b", "c"}}) {
    EXPECT_EQ(parse_standby_names(standby_names_value(standbys)), standbys);
  }
}

// Quorum commit: 'ANY k (...)' read back as k and its standbys; anything else, or an ANY that
// names "*" or fewer standbys than k, is no quorum.
TEST(StandbyNames, ReadsBackAQuorum) {
  using Quorum = std::optional<std::pair<int, std::vector<std::string>>>;
  struct Case {
    const char* value;
    Quorum quorum;
  };
  std::vector<Case> cases = {
      {"ANY 1 (\"node2\",\"node3\")", Quorum({1, {"node2", "node3"}})},
      {"any 2 ( node2 , \"node3\", node4 )", Quorum({2, {"node2", "node3", "node4"}})},
      {"FIRST 1 (node2, node3)", std::nullopt},
      {"node2", std::nullopt},
      {"", std::nullopt},
      {"ANY 3 (node2, node3)", std::nullopt},
      {"ANY 1 (node2, *)", std::nullopt},
      {"ANY (node2)", std::nullopt},
      {"ANY 1 (node2", std::nullopt},
  };
  for (const Case& c : cases) EXPECT_EQ(parse_quorum_names(c.value), c.quorum) << c.value;
  EXPECT_EQ(standby_names_value({"node2", "node3"}, 1), "ANY 1 (\"node2\",\"node3\")");
  EXPECT_EQ(parse_quorum_names(standby_names_value({"a", "b", "c"}, 2)),
            Quorum({2, {"a", "b", "c"}}));
}

// The agent tells its upstream from tandem.conf while the server starts, and by host AND port:
// nodes on several machines may all listen on 5432.
// With a backup repository: the primary archives through pgBackRest with the node's own
// settings file, standbys restore from it; without one, nothing of it. The commands survive
// both quotings (the shell's, then postgresql.conf's) of a data directory with a quote in it.
TEST(RenderTandemConf, ArchivesThroughPgBackRestWhenARepositoryIsSet) {
  ClusterConfig config = config_with_app();
  EXPECT_EQ(render_tandem_conf(config, config.nodes[1], std::nullopt).find("archive"),
            std::string::npos);
  config.name = "main";
  config.log_dir = "/c/log";
  config.backup.repository = "/srv/backup";
  config.nodes[1].data_dir = "/c/it's node2";
  std::string command = pgbackrest_command(config, config.nodes[1]);
  EXPECT_EQ(command,
            "'/usr/bin/pgbackrest' --config='/c/it'\\''s node2/pgbackrest.conf' --stanza='main'");
  char pattern[] = "/tmp/tandem-conf-XXXXXX";
  std::string dir = mkdtemp(pattern);
  std::ofstream(dir + "/tandem.conf") << render_tandem_conf(config, config.nodes[1], std::nullopt);
  EXPECT_EQ(conf_string(dir + "/tandem.conf", "archive_mode"), "on");
  // Through tandem archive-push (ops/wal_archive.h), this very program: the test's here.
  EXPECT_EQ(conf_string(dir + "/tandem.conf", "archive_command"),
            "'" + std::filesystem::read_symlink("/proc/self/exe").string() + "' archive-push -- " +
                command + " archive-push %p");
  EXPECT_EQ(conf_string(dir + "/tandem.conf", "restore_command"),
            command + " archive-get %f \"%p\"");
  std::filesystem::remove_all(dir);
  std::string backrest = render_pgbackrest_conf(config, config.nodes[1]);
  for (const char* line :
       {"[global]\nrepo1-path=/srv/backup\n", "repo1-retention-full=2\n", "log-path=/c/log\n",
        "lock-path=/c/run/pgbackrest\n", "[main]\npg1-path=/c/it's node2\npg1-port=5433\n",
        "pg1-socket-path=/c/run\n", "pg1-user=postgres\n"}) {
    EXPECT_NE(backrest.find(line), std::string::npos) << line << "\nin:\n" << backrest;
  }
}

// With a repository host: each node reaches the repository there over TLS and serves its own
// TLS server to that host alone; the repository host's file names the nodes as clients, and its
// commands name the node they reach. A node's archive-get gives up within 2 s.
TEST(RenderPgBackRestConf, ReachesTheRepositoryHostOverTls) {
  ClusterConfig config = config_with_app();
  config.name = "main";
  config.log_dir = "/c/log";
  config.backup.repository = "/srv/backup";
  config.backup.repository_host = "10.0.0.9";
  config.nodes[0].host = "10.0.0.1";
  config.nodes[1].host = "10.0.0.2";
  config.backup.tls = {
      .cert_file = "/t/host.crt", .key_file = "/t/host.key", .ca_file = "/t/ca.crt"};
  std::string node = render_pgbackrest_conf(config, config.nodes[1]);
  for (const char* line :
       {"[global]\nrepo1-path=/srv/backup\nrepo1-host=10.0.0.9\nrepo1-host-type=tls\n",
        "repo1-host-port=8432\n", "repo1-host-cert-file=/t/host.crt\n",
        "repo1-host-key-file=/t/host.key\n", "repo1-host-ca-file=/t/ca.crt\n",
        "tls-server-address=10.0.0.2\n", "tls-server-port=8432\n",
        "tls-server-cert-file=/t/host.crt\n", "tls-server-ca-file=/t/ca.crt\n",
        "tls-server-auth=10.0.0.9=main\n", "[main]\npg1-path=",
        "[global:archive-get]\nio-timeout=2\n", "[global:archive-push]\nio-timeout=10\n"}) {
    EXPECT_NE(node.find(line), std::string::npos) << line << "\nin:\n" << node;
  }
  EXPECT_EQ(node.find("repo1-retention-full"), std::string::npos) << node;  // the host's to say
  EXPECT_EQ(node.find("tls-server-auth=10.0.0.1"), std::string::npos) << node;
  std::string repository = render_repository_conf(config);
  for (const char* line : {"[global]\nrepo1-path=/srv/backup\nrepo1-retention-full=2\n",
                           "tls-server-address=10.0.0.9\n",
                           "tls-server-auth=10.0.0.1=main\ntls-server-auth=10.0.0.2=main\n"}) {
    EXPECT_NE(repository.find(line), std::string::npos) << line << "\nin:\n" << repository;
  }
  EXPECT_EQ(repository.find("pg1-"), std::string::npos) << repository;
  std::vector<std::string> args = remote_pg_args(config, 2, config.nodes[1]);
  for (const char* arg : {"--pg2-host=10.0.0.2", "--pg2-host-type=tls", "--pg2-host-port=8432",
                          "--pg2-host-cert-file=/t/host.crt", "--pg2-host-ca-file=/t/ca.crt",
                          "--pg2-port=5433", "--pg2-user=postgres"}) {
    EXPECT_NE(std::ranges::find(args, std::string(arg)), args.end()) << arg;
  }
  // Without a repository host, none of it.
  config.backup.repository_host.clear();
  EXPECT_EQ(render_pgbackrest_conf(config, config.nodes[1]).find("tls"), std::string::npos);
  // The repository host may take the superuser's connections (a checkpoint before a backup).
  config.backup.repository_host = "10.0.0.9";
  config.etcd.endpoints = {"http://10.0.0.5:2379"};
  EXPECT_NE(render_pg_hba(config).find("host postgres postgres 10.0.0.9/32 scram-sha-256\n"),
            std::string::npos)
      << render_pg_hba(config);
}

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

// postgresql.tls: the server serves TLS, TCP lines of pg_hba take only TLS, and every
// connection tandem and the standbys open over TCP checks the certificate (verify-full).
TEST(RenderTandemConf, WithTlsEveryTcpConnectionIsVerified) {
  ClusterConfig config = config_with_app();
  config.etcd.endpoints = {"http://10.1.0.9:2379"};
  for (NodeConfig& node : config.nodes) node.api_port = 8008;
  std::string plain = render_tandem_conf(config, config.nodes[0], std::nullopt);
  EXPECT_EQ(plain.find("ssl = on"), std::string::npos);
  EXPECT_EQ(render_pg_hba(config).find("hostssl"), std::string::npos);
  EXPECT_EQ(upstream_conninfo(config, config.nodes[0], "node2").find("sslmode"), std::string::npos);
  config.tls = {.cert_file = "/c/tls/server.crt",
                .key_file = "/c/tls/server.key",
                .ca_file = "/c/tls/ca.crt"};
  std::string conf = render_tandem_conf(config, config.nodes[0], std::nullopt);
  EXPECT_NE(conf.find("ssl = on\nssl_cert_file = '/c/tls/server.crt'\n"
                      "ssl_key_file = '/c/tls/server.key'\n"),
            std::string::npos)
      << conf;
  std::string hba = render_pg_hba(config);
  EXPECT_NE(hba.find("hostssl replication replicator 10.1.0.0/24 scram-sha-256"), std::string::npos)
      << hba;
  EXPECT_NE(hba.find("hostssl test_app test_app 10.1.0.0/24"), std::string::npos) << hba;
  EXPECT_NE(hba.find("hostssl all postgres 10.1.0.0/24"), std::string::npos) << hba;
  EXPECT_EQ(hba.find("\nhost "), std::string::npos) << hba;
  EXPECT_NE(hba.find("local all postgres peer"), std::string::npos);
  for (const std::string& conninfo : {upstream_conninfo(config, config.nodes[0], "node2"),
                                      admin_conninfo(config, config.nodes[0])}) {
    auto parameters = parse_conninfo(conninfo);
    ASSERT_TRUE(parameters) << conninfo;
    EXPECT_EQ(parameters->at("sslmode"), "verify-full") << conninfo;
    EXPECT_EQ(parameters->at("sslrootcert"), "/c/tls/ca.crt") << conninfo;
  }
  // Over the Unix socket, no TLS.
  EXPECT_EQ(local_admin_conninfo(config, config.nodes[0]).find("sslmode"), std::string::npos);
}

// The cluster's settings: one line each, quoted as the server reads them back (conf_string
// reads as the server does), and tandem.conf includes them before its own lines.
TEST(RenderSettingsConf, EveryValueQuotedAndIncludedBeforeTandemsOwnLines) {
  char pattern[] = "/tmp/tandem-conf-XXXXXX";
  std::string dir = mkdtemp(pattern);
  std::string path = dir + "/" + kSettingsConfName;
  std::ofstream(path) << render_settings_conf(
      {{"work_mem", "64MB"}, {"application_name", "it's \\ mine"}, {"search_path", ""}}, 42);
  EXPECT_EQ(conf_string(path, "work_mem"), "64MB");
  EXPECT_EQ(conf_string(path, "application_name"), "it's \\ mine");
  EXPECT_EQ(conf_string(path, "search_path"), "");
  std::filesystem::remove_all(dir);
  EXPECT_NE(render_settings_conf({}, 42).find("revision 42"), std::string::npos);
  ClusterConfig config = config_with_app();
  std::string conf = render_tandem_conf(config, config.nodes[0], std::nullopt);
  auto include = conf.find("include_if_exists = 'tandem.settings.conf'\n");
  ASSERT_NE(include, std::string::npos) << conf;
  EXPECT_LT(include, conf.find("port = 5432"));
}

// What adopt reads of a server's own files: pg_basebackup -R's postgresql.auto.conf, a
// hand-edited postgresql.conf.
TEST(ConfString, ReadsTheLastSettingAsTheServerWould) {
  char pattern[] = "/tmp/tandem-conf-XXXXXX";
  std::string dir = mkdtemp(pattern);
  std::string path = dir + "/postgresql.auto.conf";
  EXPECT_FALSE(conf_string(path, "primary_conninfo"));  // no file
  std::ofstream(path) << "# Do not edit this file manually!\n"
                         "#primary_conninfo = 'commented out'\n"
                         "primary_conninfo = 'user=a host=h'\n"
                         "primary_conninfo_extra = 'a longer name'\n"
                         "  primary_conninfo='user=repl password=it''s\\\\x port=5433' # last\n"
                         "primary_slot_name = bare_slot\n"
                         "broken = 'no closing quote\n";
  EXPECT_EQ(conf_string(path, "primary_conninfo"), "user=repl password=it's\\x port=5433");
  EXPECT_EQ(conf_string(path, "primary_slot_name"), "bare_slot");
  EXPECT_FALSE(conf_string(path, "broken"));
  EXPECT_FALSE(conf_string(path, "primary"));
  std::filesystem::remove_all(dir);
}

// A standby's replication password kept in a password file (Patroni's passfile=, ~/.pgpass):
// found as libpq finds it, the first matching line, "*" matching anything.
TEST(PgpassLookup, TakesTheFirstLineThatMatchesAsLibpqDoes) {
  std::string file =
      "# comment\n"
      "10.0.0.9:5432:*:replicator:other_host\n"
      "127.0.0.1:5433:replication:replicator:wrong_port\n"
      "127.0.0.1:5432:postgres:replicator:wrong_database\n"
      "127.0.0.1:5432:*:postgres:wrong_user\n"
      "127.0.0.1:5432:*:replicator:pa\\:ss\r\n"
      "*:*:*:replicator:too_late\n";
  struct Case {
    PgpassKey key;
    std::optional<std::string> want;
  };
  std::vector<Case> cases = {
      {{"127.0.0.1", "5432", "replication", "replicator"}, "pa:ss"},
      {{"localhost", "5432", "replication", "replicator"}, "too_late"},
      {{"127.0.0.1", "5432", "replication", "nobody"}, std::nullopt},
  };
  for (const Case& each : cases) {
    EXPECT_EQ(pgpass_lookup(file, each.key), each.want) << each.key.host << " " << each.key.user;
  }
  EXPECT_EQ(pgpass_lookup("", {"h", "1", "d", "u"}), std::nullopt);
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
