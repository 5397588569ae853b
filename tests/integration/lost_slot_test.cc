// A standby away longer than its slot may hold WAL (the walk-through's closing warning): the
// primary invalidates the slot, the WAL the standby needs is gone, and only a fresh copy brings
// it back. tandem makes that copy — the old data moved aside — by hand (`tandem rejoin`,
// `tandem reinit`) and by itself with agents.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "bench/local_queries.h"
#include "local_cluster_fixture.h"
#include "proc/os_user.h"

namespace tandem::testing {
namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

class LostSlotTest : public LocalClusterTest {
 protected:
  void up(bool agents, const std::string& repository = "") {
    write_config(
        1,
        [&](ClusterConfig& config) {
          config.replication.max_slot_wal_keep_size = 32LL << 20;
          config.backup.repository = repository;
        },
        agents);
    tandem_ok({"local", "up", "--dir", dir_});
    if (!agents) return;
    // `local up` starts node1's agent alone until it has bootstrapped: node1 leads.
    ASSERT_TRUE(eventually([&] { return bench::writable_node(config_) == "node1" && streams(); }));
  }
  // With node2 stopped, node1 writes and checkpoints until node2's slot is invalidated.
  void lose_slot() {
    tandem_ok({"local", "stop", "node2"});
    exec("node1", "CREATE TABLE filler (pad text)");
    ASSERT_TRUE(eventually(
        [&] {
          exec("node1",
               "INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 20000); "
               "SELECT pg_switch_wal(); CHECKPOINT;");
          return value("node1",
                       "SELECT wal_status AS v FROM pg_replication_slots WHERE "
                       "slot_name = 'node2'") == "lost";
        },
        std::chrono::seconds(120)));
    rows_ = value("node1", "SELECT count(*)::text AS v FROM filler");
  }
  bool streams() { return bench::streams(config_, "node1", "node2"); }
  int moved_aside(const std::string& why) {
    int found = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      found += entry.path().filename().string().starts_with("node2." + why + "-");
    }
    return found;
  }
  std::string rows_;
};

TEST_F(LostSlotTest, ByHandRejoinReclonesAndReinitCopiesAgain) {
  up(false);
  ASSERT_NO_FATAL_FAILURE(lose_slot());
  std::string status = tandem_ok({"status"});
  EXPECT_NE(status.find("tandem reinit node2"), std::string::npos) << status;
  auto began = Steady::now();
  std::string output = tandem_ok({"rejoin", "node2"});
  EXPECT_NE(output.find("node2: recloned"), std::string::npos) << output;
  EXPECT_TRUE(eventually([&] { return streams(); }));
  auto took = Steady::now() - began;
  EXPECT_EQ(moved_aside("slot-lost"), 1);
  EXPECT_TRUE(eventually(
      [&] { return value("node2", "SELECT count(*)::text AS v FROM filler") == rows_; }));
  std::cout << "lost slot, by hand: node2 streams again "
            << std::chrono::duration_cast<milliseconds>(took).count()
            << " ms after `tandem rejoin`\n";

  output = tandem_ok({"reinit", "node2"});
  EXPECT_NE(output.find("node2 streams from node1"), std::string::npos) << output;
  EXPECT_EQ(moved_aside("reinitialized"), 1);
  EXPECT_TRUE(eventually([&] { return streams(); }));
  CommandOutput refused = tandem({"reinit", "node1"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("runs as a primary"), std::string::npos) << refused.output;
}

TEST_F(LostSlotTest, TheAgentReclonesAStandbyWhoseSlotWasLost) {
  up(true);
  ASSERT_EQ(bench::writable_node(config_), "node1");
  ASSERT_NO_FATAL_FAILURE(lose_slot());
  auto began = Steady::now();
  tandem_ok({"local", "start", "node2"});
  EXPECT_TRUE(eventually([&] { return streams(); }, std::chrono::seconds(90)))
      << read_file(config_.log_dir + "/node2.agent.log").value_or("");
  auto took = Steady::now() - began;
  // Its agent clones it again, once: the slot is lost only once the WAL node2 needs is gone, so
  // it cannot stream as it is; and the old data is moved aside, not deleted.
  int recloned = moved_aside("slot-lost");
  EXPECT_EQ(recloned, 1);
  EXPECT_TRUE(eventually(
      [&] { return value("node2", "SELECT count(*)::text AS v FROM filler") == rows_; }));
  std::cout << "lost slot, with agents: node2 streams again "
            << std::chrono::duration_cast<milliseconds>(took).count()
            << " ms after `tandem local start node2` (recloned)\n";
}

// With a WAL archive (issue 18.2): the same lost slot costs no copy. Its agent makes the slot
// anew and node2 replays from the archive what node1 no longer has, then streams.
TEST_F(LostSlotTest, WithAnArchiveTheStandbyCatchesUpFromItWithoutACopy) {
  std::string repository = dir_ + "/repo";
  make_postgres_dir(repository);
  up(true, repository);
  ASSERT_EQ(bench::writable_node(config_), "node1");
  ASSERT_NO_FATAL_FAILURE(lose_slot());
  tandem_ok({"backup", "check"});  // every segment node2 lacks is in the archive
  auto began = Steady::now();
  tandem_ok({"local", "start", "node2"});
  std::string log_file = config_.log_dir + "/node2.agent.log";
  EXPECT_TRUE(eventually([&] { return streams(); }, std::chrono::seconds(90)))
      << read_file(log_file).value_or("");
  auto took = Steady::now() - began;
  EXPECT_EQ(moved_aside("slot-lost"), 0) << read_file(log_file).value_or("");
  // The slot serves node2 again: it holds WAL for it from now on.
  std::string slot_state;
  EXPECT_TRUE(eventually([&] {
    slot_state = value("node1",
                       "SELECT wal_status || ' ' || active::text AS v FROM pg_replication_slots "
                       "WHERE slot_name = 'node2'");
    return slot_state == "reserved true";
  })) << slot_state;
  EXPECT_TRUE(eventually(
      [&] { return value("node2", "SELECT count(*)::text AS v FROM filler") == rows_; }));
  std::cout << "lost slot, with an archive: node2 streams again "
            << std::chrono::duration_cast<milliseconds>(took).count()
            << " ms after `tandem local start node2` (no copy)\n";
}

// By hand, with an archive: `tandem rejoin` makes the lost slot anew and starts node2, which
// replays from the archive what node1 no longer has — no copy.
TEST_F(LostSlotTest, ByHandWithAnArchiveRejoinCatchesUpWithoutACopy) {
  std::string repository = dir_ + "/repo";
  make_postgres_dir(repository);
  up(false, repository);
  ASSERT_NO_FATAL_FAILURE(lose_slot());
  tandem_ok({"backup", "check"});
  std::string output = tandem_ok({"rejoin", "node2"});
  EXPECT_NE(output.find("caught up from the archive"), std::string::npos) << output;
  EXPECT_TRUE(eventually([&] { return streams(); }));
  EXPECT_EQ(moved_aside("slot-lost"), 0);
  EXPECT_TRUE(eventually(
      [&] { return value("node2", "SELECT count(*)::text AS v FROM filler") == rows_; }));
}

// A standby whose recovery, not yet consistent, waits for WAL that no node has any more (after
// a host crash, a rewound node waited in CI's dry run for a segment its new primary had
// removed: "starting" for ever). Made here by a backup label that starts node2's recovery at a
// checkpoint in segment 1, gone everywhere once the slot was lost. Its agent sees the recovery
// wait for one segment, and after kRecoveryStuckBeforeReclone copies node1 again (the old data
// moved aside).
TEST_F(LostSlotTest, TheAgentReclonesAStandbyWhoseRecoveryWaitsForWalNobodyHas) {
  up(true);
  ASSERT_EQ(bench::writable_node(config_), "node1");
  ASSERT_NO_FATAL_FAILURE(lose_slot());
  auto postgres = lookup_os_user(config_.os_user);
  ASSERT_TRUE(postgres.has_value());
  ASSERT_TRUE(write_owned_file(node("node2").data_dir + "/backup_label",
                               "START WAL LOCATION: 0/1000028 (file 000000010000000000000001)\n"
                               "CHECKPOINT LOCATION: 0/1000060\n"
                               "BACKUP METHOD: streamed\n"
                               "BACKUP FROM: primary\n"
                               "START TIME: 2026-12-03 00:00:00 UTC\n"
                               "LABEL: a checkpoint nobody has\n"
                               "START TIMELINE: 1\n",
                               *postgres, 0600)
                  .has_value());
  auto began = Steady::now();
  tandem_ok({"local", "start", "node2"});
  std::string log_file = config_.log_dir + "/node2.agent.log";
  EXPECT_TRUE(eventually([&] { return streams(); }, std::chrono::seconds(120)))
      << read_file(log_file).value_or("");
  auto took = Steady::now() - began;
  // The cycle's line is written once its step is done, which may be a moment after the copy
  // streams.
  std::string said = "waiting 30 s for WAL that nobody streams to it";
  EXPECT_TRUE(
      eventually([&] { return read_file(log_file).value_or("").find(said) != std::string::npos; },
                 std::chrono::seconds(10)))
      << read_file(log_file).value_or("");
  EXPECT_EQ(moved_aside("reinitialized"), 1);
  EXPECT_TRUE(eventually(
      [&] { return value("node2", "SELECT count(*)::text AS v FROM filler") == rows_; }));
  std::cout << "recovery waiting for removed WAL, with agents: node2 streams again "
            << std::chrono::duration_cast<milliseconds>(took).count()
            << " ms after `tandem local start node2` (recloned)\n";
}

// Issue 12: when the copy cannot be made — no space — tandem says so and keeps the old data.
// node2's data directory lives on a small file system of its own, filled up but for 4 MB.
TEST_F(LostSlotTest, ACopyWithoutSpaceSaysSoAndKeepsTheOldData) {
  std::string small = dir_ + "/small";
  std::filesystem::create_directories(small);
  ASSERT_EQ(mount("tandem-test", small.c_str(), "tmpfs", 0, "size=256m,mode=0755"), 0);
  struct Finally {
    std::function<void()> run;
    ~Finally() { run(); }
  } unmount{[this, small] {
    (void)tandem({"local", "down"});
    umount2(small.c_str(), MNT_DETACH);
  }};
  write_config(1, [&](ClusterConfig& config) { config.nodes[1].data_dir = small + "/node2"; });
  tandem_ok({"local", "up", "--dir", dir_});
  ASSERT_TRUE(eventually([&] { return streams(); }));
  exec("node1", "CREATE TABLE kept AS SELECT 42 AS n");
  ASSERT_TRUE(eventually([&] { return value("node2", "SELECT n::text AS v FROM kept") == "42"; }));

  struct statvfs space {};
  ASSERT_EQ(statvfs(small.c_str(), &space), 0);
  off_t ballast_size = static_cast<off_t>(space.f_bavail * space.f_frsize) - (4 << 20);
  ASSERT_GT(ballast_size, 0);
  std::string ballast = small + "/ballast";
  int fd = open(ballast.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(posix_fallocate(fd, 0, ballast_size), 0);
  close(fd);

  CommandOutput refused = tandem({"reinit", "node2"});
  EXPECT_NE(refused.exit_code, 0) << refused.output;
  EXPECT_NE(refused.output.find("No space left on device"), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("its old data is back in " + small + "/node2"), std::string::npos)
      << refused.output;

  // The old data is whole: with room again, node2 starts as it was and streams.
  std::filesystem::remove(ballast);
  tandem_ok({"local", "start", "node2"});
  EXPECT_TRUE(eventually([&] { return streams(); }));
  EXPECT_EQ(value("node2", "SELECT n::text AS v FROM kept"), "42");
}

}  // namespace
}  // namespace tandem::testing
