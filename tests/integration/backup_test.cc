// Backups with pgBackRest on a local cluster with agents (issue 18): the stanza made at
// bootstrap, WAL archived by the primary, backups taken from a streaming standby, and all of it
// working again after a host crash fails over — no step by hand. A repository that is missing
// or closed to the OS user is refused with the reason, before anything is made.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench/local_queries.h"
#include "local_cluster_fixture.h"

namespace tandem::testing {
namespace {

using json = nlohmann::json;

class BackupTest : public LocalClusterTest {
 protected:
  void up(const std::string& repository) {
    write_config(
        2, [&](ClusterConfig& config) { config.backup.repository = repository; },
        /*agents=*/true);
    tandem_ok({"local", "up", "--dir", dir_});
  }
  std::string primary() { return bench::writable_node(config_); }
  json backups() {
    std::string out = tandem_ok({"backup", "list", "--json"});
    json parsed = json::parse(out, nullptr, false);
    EXPECT_TRUE(parsed.is_object()) << out;
    return parsed;
  }
  bool streams(const std::string& standby) {
    std::string leader = primary();
    return !leader.empty() && bench::streams(config_, leader, standby);
  }
};

TEST_F(BackupTest, ArchivesAndBacksUpFromAStandbyAcrossAFailover) {
  std::string repository = dir_ + "/repo";
  make_postgres_dir(repository);
  up(repository);
  ASSERT_EQ(primary(), "node1");
  // The stanza exists from the bootstrap on: no backup yet, the primary's WAL archived.
  json empty = backups();
  EXPECT_EQ(empty["backups"].size(), 0u) << empty.dump();
  EXPECT_NE(tandem_ok({"backup", "check"}).find("reaches the repository"), std::string::npos);

  exec("node1", "CREATE TABLE orders (n int); INSERT INTO orders SELECT generate_series(1, 1000)");
  ASSERT_TRUE(eventually([&] { return streams("node2") && streams("node3"); }));
  std::string full = tandem_ok({"backup", "--type", "full"});
  std::cout << full;
  EXPECT_NE(full.find("(full) taken from node"), std::string::npos) << full;
  EXPECT_EQ(full.find("taken from node1"), std::string::npos) << "from the primary: " << full;

  // A host crash: another node leads, on a new timeline; its WAL reaches the archive with no
  // step by hand, and the next backup is taken from a standby of it.
  tandem_ok({"local", "crash", "node1"});
  std::string leader;
  ASSERT_TRUE(eventually([&] { return !(leader = primary()).empty() && leader != "node1"; },
                         std::chrono::seconds(60)));
  exec(leader, "INSERT INTO orders SELECT generate_series(1001, 2000)");
  EXPECT_NE(tandem_ok({"backup", "check"}).find(leader + "'s WAL reaches the repository"),
            std::string::npos);
  std::string other = leader == "node2" ? "node3" : "node2";
  ASSERT_TRUE(eventually([&] { return streams(other); }, std::chrono::seconds(60)));
  std::string incremental = tandem_ok({"backup"});
  std::cout << incremental;
  EXPECT_NE(incremental.find("(incr) taken from node"), std::string::npos) << incremental;
  EXPECT_EQ(incremental.find("taken from " + leader), std::string::npos) << incremental;

  json listed = backups();
  ASSERT_EQ(listed["backups"].size(), 2u) << listed.dump();
  EXPECT_EQ(listed["backups"][0]["type"], "full");
  EXPECT_EQ(listed["backups"][1]["type"], "incr");
  // The archive reaches the new timeline.
  std::string newest = listed["archive_max"];
  EXPECT_TRUE(newest.starts_with("00000002")) << newest;
  std::string table = tandem_ok({"backup", "list"});
  std::cout << table;
  EXPECT_NE(table.find("incr"), std::string::npos);
}

TEST_F(BackupTest, ARepositoryThatIsMissingOrClosedIsRefusedBeforeAnythingIsMade) {
  std::string missing = dir_ + "/no-such-repo";
  write_config(
      1, [&](ClusterConfig& config) { config.backup.repository = missing; }, /*agents=*/false);
  CommandOutput out = tandem({"local", "up", "--dir", dir_, "--manual"});
  EXPECT_NE(out.exit_code, 0) << out.output;
  EXPECT_NE(out.output.find("backup.repository " + missing + " is not a directory"),
            std::string::npos)
      << out.output;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/node1/PG_VERSION"));

  // A directory only root may write.
  std::string closed = dir_ + "/closed-repo";
  std::filesystem::create_directory(closed);
  std::filesystem::permissions(closed, std::filesystem::perms(0755));
  write_config(
      1, [&](ClusterConfig& config) { config.backup.repository = closed; }, /*agents=*/false);
  out = tandem({"local", "up", "--dir", dir_, "--manual"});
  EXPECT_NE(out.exit_code, 0) << out.output;
  EXPECT_NE(out.output.find("cannot write backup.repository " + closed), std::string::npos)
      << out.output;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/node1/PG_VERSION"));
}

}  // namespace
}  // namespace tandem::testing
