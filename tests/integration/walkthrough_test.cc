// Every row of shared/SCENARIO.md, replayed with tandem commands against real PostgreSQL 15.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bench/local_queries.h"
#include "core/lsn.h"
#include "local_cluster_fixture.h"
#include "proc/os_user.h"
#include "proc/ports.h"
#include "proc/process_runner.h"

namespace tandem::testing {
namespace {

class WalkthroughTest : public LocalClusterTest {
 protected:
  nlohmann::json status_json() { return nlohmann::json::parse(tandem_ok({"status", "--json"})); }
  nlohmann::json node_status(const nlohmann::json& status, const std::string& name) {
    for (const auto& each : status["nodes"]) {
      if (each["name"] == name) return each;
    }
    ADD_FAILURE() << "no " << name << " in status";
    return {};
  }
  nlohmann::json slot_status(const nlohmann::json& status, const std::string& name) {
    for (const auto& each : status["slots"]) {
      if (each["name"] == name) return each;
    }
    return {};
  }
  std::string rows(const std::string& name) {
    return value(name, "SELECT string_agg(i || ':' || v, ',' ORDER BY i) AS v FROM foo");
  }
  bool streams(const std::string& primary, const std::string& standby) {
    return bench::streams(config_, primary, standby);
  }
  std::string read_all(const std::string& path) { return read_file(path).value_or(""); }
};

TEST_F(WalkthroughTest, EveryRowOfTheScenario) {
  // A small WAL cap so that row 15 can overrun it in seconds.
  write_config(
      2, [](ClusterConfig& config) { config.replication.max_slot_wal_keep_size = 32LL << 20; });
  std::string up = tandem_ok({"local", "up", "--dir", dir_});
  ASSERT_NE(up.find("node3 streams from node1"), std::string::npos) << up;

  {
    SCOPED_TRACE("row 1: initdb --no-locale --encoding=UTF-8, started, accepts connections");
    EXPECT_EQ(value("node1", "SELECT 1 AS v"), "1");
    EXPECT_EQ(value("node1", "SELECT current_setting('server_encoding') AS v"), "UTF8");
    EXPECT_EQ(value("node1", "SELECT current_setting('lc_collate') AS v"), "C");
    EXPECT_EQ(value("node1", "SELECT current_setting('data_checksums') AS v"), "on");
  }
  {
    SCOPED_TRACE("row 2: replication role, app role and database");
    EXPECT_EQ(value("node1",
                    "SELECT rolreplication::text AS v FROM pg_roles "
                    "WHERE rolname = 'replicator'"),
              "true");
    EXPECT_EQ(value("node1", "SELECT rolname AS v FROM pg_roles WHERE rolname = 'test_app'"),
              "test_app");
    EXPECT_EQ(value("node1",
                    "SELECT pg_get_userbyid(datdba) AS v FROM pg_database "
                    "WHERE datname = 'test_app'"),
              "test_app");
    EXPECT_EQ(value("node1",
                    "SELECT left(rolpassword, 14) AS v FROM pg_authid "
                    "WHERE rolname = 'replicator'"),
              "SCRAM-SHA-256$");
  }
  {
    SCOPED_TRACE("row 3: replication allowed to the replication role only, with its password");
    auto replication_as = [&](const std::string& user, const std::string& passfile) {
      return Connection::open(make_conninfo({{"host", "127.0.0.1"},
                                             {"port", std::to_string(base_port_)},
                                             {"user", user},
                                             {"passfile", passfile},
                                             {"replication", "true"},
                                             {"connect_timeout", "3"}}));
    };
    EXPECT_TRUE(replication_as("replicator", config_.password_file));
    auto app = replication_as("test_app", config_.password_file);
    ASSERT_FALSE(app);
    EXPECT_NE(app.error().message.find("no pg_hba.conf entry for replication connection"),
              std::string::npos)
        << app.error().message;
    struct stat info {};
    ASSERT_EQ(stat(config_.password_file.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    std::string password = read_all(config_.password_file);
    password = password.substr(password.find("replicator:") + 11, 32);
    ASSERT_EQ(password.size(), 32u);
    for (const auto& entry : std::filesystem::directory_iterator(config_.log_dir)) {
      EXPECT_EQ(read_all(entry.path()).find(password), std::string::npos) << entry.path();
    }
    EXPECT_EQ(read_all(config_path_).find(password), std::string::npos);
    EXPECT_EQ(up.find(password), std::string::npos);
  }
  {
    SCOPED_TRACE("row 4: table foo with two rows");
    exec("node1",
         "CREATE TABLE foo (i int, v varchar(100)); "
         "INSERT INTO foo VALUES (1, 'hoge'), (2, 'fuga')");
    EXPECT_EQ(rows("node1"), "1:hoge,2:fuga");
  }
  {
    SCOPED_TRACE("row 5: replication-ready settings");
    for (const auto& [setting, expected] :
         std::vector<std::pair<std::string, std::string>>{{"wal_level", "replica"},
                                                          {"max_wal_senders", "10"},
                                                          {"max_replication_slots", "10"},
                                                          {"hot_standby", "on"},
                                                          {"wal_retrieve_retry_interval", "200ms"},
                                                          {"max_slot_wal_keep_size", "32MB"}}) {
      EXPECT_EQ(value("node1", "SELECT current_setting('" + setting + "') AS v"), expected)
          << setting;
    }
  }
  {
    SCOPED_TRACE("row 6: standbys by base backup through their own slots, read-only");
    EXPECT_EQ(value("node2", "SELECT pg_is_in_recovery()::text AS v"), "true");
    EXPECT_EQ(value("node2", "SELECT current_setting('port') AS v"),
              std::to_string(base_port_ + 1));
    EXPECT_NE(read_all(config_.log_dir + "/node2.log")
                  .find("database system is ready to accept read-only connections"),
              std::string::npos);
    EXPECT_EQ(value("node1",
                    "SELECT string_agg(slot_name, ',' ORDER BY slot_name) AS v "
                    "FROM pg_replication_slots"),
              "node2,node3");
  }
  {
    SCOPED_TRACE("row 7: row 3 reaches the standbys");
    exec("node1", "INSERT INTO foo VALUES (3, 'puipui')");
    EXPECT_TRUE(eventually([&] { return rows("node2") == "1:hoge,2:fuga,3:puipui"; }));
    EXPECT_TRUE(eventually([&] { return rows("node3") == "1:hoge,2:fuga,3:puipui"; }));
  }
  {
    SCOPED_TRACE("row 8: pg_stat_replication and tandem status agree: streaming, with LSNs");
    EXPECT_EQ(value("node1",
                    "SELECT count(*) AS v FROM pg_stat_replication "
                    "WHERE state = 'streaming' AND sent_lsn IS NOT NULL AND "
                    "write_lsn IS NOT NULL AND flush_lsn IS NOT NULL AND "
                    "replay_lsn IS NOT NULL AND sync_state = 'async'"),
              "2");
    auto status = status_json();
    EXPECT_EQ(status["primary"], "node1");
    auto standby = node_status(status, "node2");
    EXPECT_EQ(standby["role"], "standby");
    EXPECT_EQ(standby["replication"]["state"], "streaming");
    EXPECT_EQ(standby["replication"]["sync_state"], "async");
    EXPECT_TRUE(Lsn::parse(standby["replication"]["replay_lsn"].get<std::string>()));
    EXPECT_EQ(standby["timeline"], 1);
    std::string table = tandem_ok({"status"});
    EXPECT_NE(table.find("streaming from node1"), std::string::npos) << table;
  }
  {
    SCOPED_TRACE("row 9: the standby's replay timestamp");
    EXPECT_EQ(value("node2", "SELECT (pg_last_xact_replay_timestamp() IS NOT NULL)::text AS v"),
              "true");
    EXPECT_TRUE(node_status(status_json(), "node2")["last_replay_at"].is_number());
  }
  {
    SCOPED_TRACE("row 10: INSERT on the standby is refused");
    EXPECT_NE(value("node2", "INSERT INTO foo VALUES (9, 'no') RETURNING 1 AS v")
                  .find("cannot execute INSERT in a read-only transaction"),
              std::string::npos);
  }
  {
    SCOPED_TRACE("row 11: the primary crashes; the standby stays readable, not writable");
    tandem_ok({"local", "crash", "node1"});
    EXPECT_FALSE(try_sql("node1"));
    EXPECT_EQ(rows("node2"), "1:hoge,2:fuga,3:puipui");
    EXPECT_NE(value("node2", "INSERT INTO foo VALUES (9, 'no') RETURNING 1 AS v")
                  .find("read-only transaction"),
              std::string::npos);
  }
  {
    SCOPED_TRACE("row 12: promote; row 4 written on the new primary");
    std::string promoted = tandem_ok({"promote", "node2"});
    EXPECT_NE(promoted.find("accepts writes"), std::string::npos) << promoted;
    EXPECT_EQ(value("node2", "INSERT INTO foo VALUES (4, 'standby') RETURNING 1 AS v"), "1");
    EXPECT_EQ(value("node2",
                    "SELECT string_agg(slot_name, ',' ORDER BY slot_name) AS v "
                    "FROM pg_replication_slots"),
              "node1,node3");
    EXPECT_TRUE(eventually([&] { return streams("node2", "node3"); }));
  }
  {
    SCOPED_TRACE("row 13: the old primary rejoins by pg_rewind, holds rows 1-4, streams");
    std::string rejoined = tandem_ok({"rejoin", "node1"});
    EXPECT_NE(rejoined.find("node1: rewound with pg_rewind"), std::string::npos) << rejoined;
    EXPECT_EQ(rejoined.find("moved"), std::string::npos) << rejoined;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      EXPECT_EQ(entry.path().string().find("diverged"), std::string::npos) << entry.path();
    }
    EXPECT_EQ(value("node1", "SELECT pg_is_in_recovery()::text AS v"), "true");
    EXPECT_TRUE(eventually([&] { return rows("node1") == "1:hoge,2:fuga,3:puipui,4:standby"; }));
    EXPECT_TRUE(streams("node2", "node1"));
    EXPECT_EQ(node_status(status_json(), "node1")["timeline"], 2);
  }
  {
    SCOPED_TRACE("row 14: a stopped standby's slot keeps the WAL; row 5 arrives on restart");
    tandem_ok({"local", "stop", "node1"});
    std::string before = value("node2", "SELECT pg_current_wal_lsn()::text AS v");
    EXPECT_EQ(value("node2", "INSERT INTO foo VALUES (5, 'standby is offline') RETURNING 1 AS v"),
              "1");
    exec("node2", "CHECKPOINT");
    auto slot = slot_status(status_json(), "node1");
    EXPECT_EQ(slot["active"], false);
    EXPECT_EQ(slot["wal_status"], "reserved");
    EXPECT_LE(Lsn::parse(slot["restart_lsn"].get<std::string>()).value(),
              Lsn::parse(before).value());
    EXPECT_GT(slot["retained_bytes"].get<std::int64_t>(), 0);
    tandem_ok({"local", "start", "node1"});
    EXPECT_TRUE(eventually(
        [&] { return rows("node1") == "1:hoge,2:fuga,3:puipui,4:standby,5:standby is offline"; }));
    EXPECT_TRUE(eventually([&] { return streams("node2", "node1"); }));
  }
  {
    SCOPED_TRACE("row 15: an abandoned slot is capped by max_slot_wal_keep_size and flagged");
    tandem_ok({"local", "stop", "node3"});
    // More than 32 MB of WAL: each switch starts a new 16 MB segment.
    for (int segment = 0; segment < 4; ++segment) {
      exec("node2", "INSERT INTO foo VALUES (100, 'wal'); SELECT pg_switch_wal()");
    }
    exec("node2", "CHECKPOINT");
    EXPECT_TRUE(eventually([&] {
      return value("node2",
                   "SELECT wal_status AS v FROM pg_replication_slots "
                   "WHERE slot_name = 'node3'") == "lost";
    }));
    auto status = status_json();
    EXPECT_EQ(slot_status(status, "node3")["wal_status"], "lost");
    bool flagged = false;
    for (const auto& warning : status["warnings"]) {
      flagged |= warning.get<std::string>().find("slot node3 was invalidated") != std::string::npos;
    }
    EXPECT_TRUE(flagged) << status.dump(2);
    // The slot of the live standby is untouched.
    EXPECT_EQ(slot_status(status, "node1")["wal_status"], "reserved");
    std::string cleaned = tandem_ok({"slot", "cleanup"});
    EXPECT_NE(cleaned.find("dropped slot node3"), std::string::npos) << cleaned;
    EXPECT_EQ(value("node2", "SELECT count(*) AS v FROM pg_replication_slots"), "1");
  }
  {
    SCOPED_TRACE("tandem local down leaves nothing running");
    tandem_ok({"local", "down"});
    for (const NodeConfig& each : config_.nodes) {
      EXPECT_FALSE(std::filesystem::exists(each.data_dir + "/postmaster.pid")) << each.name;
      EXPECT_FALSE(port_in_use(each.host, each.port)) << each.name;
      EXPECT_TRUE(std::filesystem::exists(each.data_dir + "/PG_VERSION")) << each.name;
    }
  }
}

}  // namespace
}  // namespace tandem::testing

namespace tandem::testing {
namespace {

// Issue 12: `make demo` said "something still runs!" whenever another tandem agent ran anywhere
// on the machine. With another cluster and its agents running, the demo ends clean, and that
// cluster still runs.
TEST_F(LocalClusterTest, TheDemoEndsCleanWhileAnotherClusterRuns) {
  write_config(1, {}, /*agents=*/true);
  tandem_ok({"local", "up", "--dir", dir_});
  SystemProcessRunner runner;
  auto demo = runner.run({.program = "/bin/bash",
                          .args = {std::string(TANDEM_SOURCE_DIR) + "/scripts/demo", TANDEM_BINARY},
                          .env = {{"DEMO_DIR", dir_ + "/demo"}},
                          .working_dir = dir_,
                          .timeout = std::chrono::minutes(5)});
  // A demo killed at its timeout never ran its own cleanup: its cluster is stopped here, so
  // that the tests after this one find its ports free.
  std::string demo_config = dir_ + "/demo/auto/tandem.yaml";
  if (!demo && std::filesystem::exists(demo_config)) {
    (void)runner.run({.program = TANDEM_BINARY,
                      .args = {"-c", demo_config, "local", "down"},
                      .timeout = std::chrono::minutes(2)});
  }
  ASSERT_TRUE(demo) << demo.error().message;
  EXPECT_EQ(demo->exit_code, 0) << demo->output;
  EXPECT_EQ(demo->output.find("something still runs!"), std::string::npos) << demo->output;
  EXPECT_NE(demo->output.find("nothing runs."), std::string::npos) << demo->output;
  EXPECT_FALSE(bench::writable_node(config_).empty()) << "the other cluster was stopped";
}

}  // namespace
}  // namespace tandem::testing
