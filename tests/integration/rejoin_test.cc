// The three ways back for a former primary: follow (it stopped cleanly before the promotion),
// pg_rewind (it diverged), and a fresh clone when rewinding is impossible.
#include <filesystem>
#include <thread>

#include "common/clock.h"
#include "local_cluster_fixture.h"
#include "ops/cluster_lock.h"
#include "ops/store_access.h"
#include "pg/node_probe.h"
#include "proc/process_runner.h"

namespace tandem::testing {
namespace {

class RejoinTest : public LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    write_config(standbys());
    tandem_ok({"local", "up", "--dir", dir_});
    exec("node1", "CREATE TABLE t (i int); INSERT INTO t VALUES (1)");
    ASSERT_TRUE(eventually([&] { return count("node2") == "1"; }));
  }

  virtual int standbys() const { return 1; }

  std::string count(const std::string& name) {
    return value(name, "SELECT count(*)::text AS v FROM t");
  }

  void run_as_postgres(const std::string& program, const std::vector<std::string>& args) {
    SystemProcessRunner runner;
    auto result = runner.run(
        {.program = "/usr/lib/postgresql/15/bin/" + program, .args = args, .run_as = "postgres"});
    ASSERT_TRUE(result) << result.error().message;
    ASSERT_EQ(result->exit_code, 0) << program << ": " << result->output;
  }

  std::vector<std::string> diverged_dirs() {
    std::vector<std::string> found;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      if (entry.path().filename().string().starts_with("node1.diverged-")) {
        found.push_back(entry.path().string());
      }
    }
    return found;
  }
};

TEST_F(RejoinTest, CleanlyStoppedPrimaryFollowsWithoutRewind) {
  tandem_ok({"local", "stop", "node1"});
  tandem_ok({"promote", "node2"});
  exec("node2", "INSERT INTO t VALUES (2)");
  std::string output = tandem_ok({"rejoin", "node1"});
  EXPECT_NE(output.find("node1: followed without rewind"), std::string::npos) << output;
  EXPECT_TRUE(eventually([&] { return count("node1") == "2"; }));
  EXPECT_TRUE(diverged_dirs().empty());
}

class ThreeNodeManualTest : public RejoinTest {
 protected:
  int standbys() const override { return 2; }
};

// Two people promote two standbys at once after the primary crashed: the timeline claim lets
// one through and refuses the other, so there is one primary, on a timeline nobody else uses.
TEST_F(ThreeNodeManualTest, TwoPromotionsAtOnceLeaveOnePrimary) {
  tandem_ok({"local", "crash", "node1"});
  CommandOutput outputs[2];
  std::thread second([&] { outputs[1] = tandem({"promote", "node3"}); });
  outputs[0] = tandem({"promote", "node2"});
  second.join();
  int succeeded = (outputs[0].exit_code == 0) + (outputs[1].exit_code == 0);
  EXPECT_EQ(succeeded, 1) << outputs[0].output << "\n" << outputs[1].output;
  const CommandOutput& refused = outputs[0].exit_code == 0 ? outputs[1] : outputs[0];
  // Refused by the command lock while the first runs, by the timeline claim or by the running
  // primary once it is done.
  EXPECT_TRUE(refused.output.find("is changing the cluster right now") != std::string::npos ||
              refused.output.find("claimed by") != std::string::npos ||
              refused.output.find("still runs as the primary") != std::string::npos)
      << refused.output;
  int writable = 0;
  for (const char* name : {"node2", "node3"}) {
    writable += value(name, "SELECT (NOT pg_is_in_recovery())::text AS v") == "true";
  }
  EXPECT_EQ(writable, 1);
}

// One role-changing command by hand at a time: while one holds the cluster's command lock,
// another is refused and told who holds it; once it is done, the next one runs.
TEST_F(RejoinTest, ACommandRunningRefusesTheNext) {
  tandem_ok({"local", "stop", "node1"});
  tandem_ok({"promote", "node2"});
  {
    SystemClock clock;
    auto store = open_cluster_store(config_, clock);
    ASSERT_TRUE(store);
    auto held = ClusterLock::take(**store, ClusterLayout(config_.name), "rejoin node9");
    ASSERT_TRUE(held) << held.error().message;
    for (const std::vector<std::string>& command : {std::vector<std::string>{"rejoin", "node1"},
                                                    {"reinit", "node1"},
                                                    {"failover", "--to", "node1"}}) {
      CommandOutput refused = tandem(command);
      EXPECT_NE(refused.exit_code, 0) << command[0];
      EXPECT_NE(refused.output.find("tandem rejoin node9"), std::string::npos) << refused.output;
      EXPECT_NE(refused.output.find("is changing the cluster right now"), std::string::npos)
          << refused.output;
    }
  }
  std::string output = tandem_ok({"rejoin", "node1"});
  EXPECT_NE(output.find("node1: followed without rewind"), std::string::npos) << output;
}

TEST_F(RejoinTest, RewindImpossibleFallsBackToACloneAndKeepsTheOldDirectory) {
  // The walk-through's own failure: an old primary without data checksums cannot be rewound.
  exec("node1", "INSERT INTO t VALUES (2)");
  tandem_ok({"local", "crash", "node1"});
  tandem_ok({"promote", "node2"});
  exec("node2", "INSERT INTO t VALUES (3)");
  // Without checksums and, since tandem.conf turns it on, without wal_log_hints either (its end
  // of recovery writes the setting into pg_control, which pg_rewind reads).
  run_as_postgres("postgres", {"--single", "-c", "wal_log_hints=off", "-D", node("node1").data_dir,
                               "template1"});
  run_as_postgres("pg_checksums", {"--disable", "-D", node("node1").data_dir});

  std::string output = tandem_ok({"rejoin", "node1"});
  EXPECT_NE(output.find("pg_rewind is impossible"), std::string::npos) << output;
  EXPECT_NE(output.find("node1: recloned"), std::string::npos) << output;
  EXPECT_NE(output.find("WAL written by node1 after the failover, not on the primary: "),
            std::string::npos)
      << output;
  auto aside = diverged_dirs();
  ASSERT_EQ(aside.size(), 1u);
  EXPECT_TRUE(std::filesystem::exists(aside.front() + "/PG_VERSION"));
  EXPECT_NE(output.find("kept in " + aside.front()), std::string::npos) << output;
  EXPECT_TRUE(eventually([&] { return count("node1") == "3"; }));
  EXPECT_EQ(value("node1", "SELECT current_setting('data_checksums') AS v"), "on");
}

// The bench's host crash, 1 trial in 6 on 79f9472: the old primary's last checkpoint before
// the failover had its redo point in an earlier segment than its record. pg_rewind (PostgreSQL
// 15.18) kept the target's WAL from the record's segment on and removed the earlier one, which
// the new primary had recycled: the rewound node waited for WAL nobody had and never opened.
// tandem holds the target's WAL through the rewind and puts that segment back.
TEST_F(RejoinTest, ARewindPutsBackTheSegmentOfTheCommonCheckpointsRedoPoint) {
  // A spread checkpoint (pg_backup_start without fast), its redo point fixed while the
  // checkpointer paces its writes; a segment switch meanwhile puts its record in a later segment.
  exec("node1", "ALTER SYSTEM SET checkpoint_timeout = '30s'");
  exec("node1", "ALTER SYSTEM SET checkpoint_completion_target = 0.2");
  exec("node1", "SELECT pg_reload_conf()");
  // A checkpoint now: no timed one (30 s from the last) is the spread one the poll below sees.
  exec("node1", "CHECKPOINT");
  exec("node1", "CREATE TABLE big (i int); INSERT INTO big SELECT generate_series(1, 400000)");
  std::thread backup([&] { exec("node1", "SELECT pg_backup_start('spread', false)"); });
  bool spreading = eventually(
      [&] {
        return value("node1",
                     "SELECT count(*)::text AS v FROM pg_stat_activity WHERE backend_type = "
                     "'checkpointer' AND wait_event = 'CheckpointWriteDelay'") == "1";
      },
      std::chrono::seconds(20));
  exec("node1", "INSERT INTO t VALUES (2)");
  exec("node1", "SELECT pg_switch_wal()");
  backup.join();
  ASSERT_TRUE(spreading);
  std::string redo_segment =
      value("node1", "SELECT pg_walfile_name(redo_lsn) AS v FROM pg_control_checkpoint()");
  ASSERT_NE(redo_segment, value("node1",
                                "SELECT pg_walfile_name(checkpoint_lsn) AS v FROM "
                                "pg_control_checkpoint()"));
  ASSERT_TRUE(eventually([&] { return count("node2") == "2"; }));
  tandem_ok({"local", "crash", "node1"});
  tandem_ok({"promote", "node2"});
  // The new primary recycles the segment (the rejoin's own CHECKPOINT would too).
  for (int i = 0; i < 2; ++i) {
    exec("node2", "INSERT INTO t VALUES (3)");
    exec("node2", "SELECT pg_switch_wal()");
  }
  exec("node2", "CHECKPOINT");
  ASSERT_EQ(value("node2", "SELECT count(*)::text AS v FROM pg_ls_waldir() WHERE name = '" +
                               redo_segment + "'"),
            "0");

  std::string output = tandem_ok({"rejoin", "node1"});
  EXPECT_NE(output.find("node1: rewound with pg_rewind"), std::string::npos) << output;
  EXPECT_NE(output.find("node1: put back 1 WAL segment(s) pg_rewind removed that its recovery "
                        "starts in: " +
                        redo_segment),
            std::string::npos)
      << output;
  EXPECT_TRUE(eventually([&] { return count("node1") == "4"; }));
  EXPECT_FALSE(std::filesystem::exists(node("node1").data_dir + ".rewind-wal"));
}

class ThreeNodeRejoinTest : public RejoinTest {
 protected:
  int standbys() const override { return 2; }
};

TEST_F(ThreeNodeRejoinTest, StandbyAheadOfTheNewPrimaryIsRewoundToFollowIt) {
  // node2 misses row 2, node3 has it; node2 is then promoted: node3 replayed past the fork.
  tandem_ok({"local", "stop", "node2"});
  exec("node1", "INSERT INTO t VALUES (2)");
  ASSERT_TRUE(eventually([&] { return count("node3") == "2"; }));
  tandem_ok({"local", "crash", "node1"});
  tandem_ok({"local", "start", "node2"});
  std::string promoted = tandem_ok({"promote", "node2"});
  EXPECT_NE(promoted.find("run `tandem rejoin node3`"), std::string::npos) << promoted;
  exec("node2", "INSERT INTO t VALUES (3)");

  std::string output = tandem_ok({"rejoin", "node3"});
  EXPECT_NE(output.find("node3: rewound with pg_rewind"), std::string::npos) << output;
  EXPECT_TRUE(eventually([&] { return count("node3") == "2"; }));
  EXPECT_EQ(value("node3", "SELECT string_agg(i::text, ',' ORDER BY i) AS v FROM t"), "1,3");
  EXPECT_EQ(value("node2",
                  "SELECT state AS v FROM pg_stat_replication "
                  "WHERE application_name = 'node3'"),
            "streaming");
}

// A node told to follow a primary that hands over meanwhile (the API test saw it: its agent
// waited 15 s for a standby to stream from it as a primary, rewound from that standby and
// waited 60 s more) is told at once that its primary is one no more.
TEST_F(ThreeNodeRejoinTest, WaitingForAPrimaryThatBecameAStandbyEndsAtOnce) {
  SystemClock clock;
  auto waited =
      wait_streaming(config_, clock, node("node2"), node("node3"), std::chrono::seconds(20));
  ASSERT_FALSE(waited);
  EXPECT_EQ(waited.error().code, ErrorCode::kUnavailable) << waited.error().message;
  EXPECT_EQ(waited.error().message,
            "node2 is no longer a primary (it is in recovery): node3 follows whoever leads now");
  // While it leads, the same wait ends with the standby streaming.
  EXPECT_TRUE(
      wait_streaming(config_, clock, node("node1"), node("node3"), std::chrono::seconds(20)));
}

// Nor does it wait out its timeout for a primary that stopped (the agent test's clean stop of
// the leader: the new standby's clone waited 60 s for its gone upstream before its agent could
// follow the new leader): refused connections for kUpstreamGoneAfter end the wait.
TEST_F(ThreeNodeRejoinTest, WaitingForAPrimaryThatStoppedEndsWithoutTheTimeout) {
  tandem_ok({"local", "stop", "node1"});
  SystemClock clock;
  auto waited =
      wait_streaming(config_, clock, node("node1"), node("node3"), std::chrono::seconds(120));
  ASSERT_FALSE(waited);
  EXPECT_EQ(waited.error().code, ErrorCode::kUnavailable) << waited.error().message;
  EXPECT_NE(waited.error().message.find("node1 has refused connections for 5 s"), std::string::npos)
      << waited.error().message;
}

}  // namespace
}  // namespace tandem::testing
