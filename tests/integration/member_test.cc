// Members at run time on a local cluster with agents (issue 17.2): `tandem member add` starts a
// new node's agent, which clones it, and `tandem member remove` stops one, drops its slot and
// keeps its data — the running agents taking the new list without a restart of PostgreSQL,
// while a probe writes. Bad requests change nothing.
#include <fmt/format.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "bench/local_queries.h"
#include "bench/write_probe.h"
#include "local/local_agents.h"
#include "local_cluster_fixture.h"
#include "pg/postmaster.h"
#include "proc/os_user.h"

namespace tandem::testing {
namespace {

using std::chrono::milliseconds;
using WallClock = std::chrono::system_clock;

class MemberTest : public LocalClusterTest {
 protected:
  std::string primary() { return bench::writable_node(config_); }
  pid_t postmaster(const std::string& name) {
    return running_postmaster(node(name).data_dir).value_or(0);
  }
  std::string agent_log(const std::string& name) {
    return read_file(config_.log_dir + "/" + name + ".agent.log").value_or("");
  }
  std::string config_text() { return read_file(config_path_).value_or(""); }
  // How often the node's agent was built again on a new member list.
  int rebuilds(const std::string& name) {
    std::string log = agent_log(name);
    int count = 0;
    for (auto at = log.find("the agent is built again"); at != std::string::npos;
         at = log.find("the agent is built again", at + 1)) {
      ++count;
    }
    return count;
  }
  // The node's agent applied `change` ("+node3") and was built again `times` in all (a reload
  // is a signal: the command does not wait for it).
  bool took(const std::string& name, const std::string& change, int times) {
    return eventually([&] {
      return agent_log(name).find("applied members " + change) != std::string::npos &&
             rebuilds(name) == times;
    });
  }
  // A refused request: an error, and tandem.yaml as it was.
  void expect_refused(const std::vector<std::string>& args, const std::string& why) {
    std::string before = config_text();
    CommandOutput out = tandem(args);
    EXPECT_NE(out.exit_code, 0) << out.output;
    EXPECT_NE(out.output.find(why), std::string::npos) << out.output;
    EXPECT_EQ(config_text(), before);
  }
};

TEST_F(MemberTest, AddAndRemoveWhileTheClusterWrites) {
  write_config(1, {}, /*agents=*/true);
  tandem_ok({"local", "up", "--dir", dir_});
  std::string first = primary();
  ASSERT_FALSE(first.empty());
  std::string second = first == "node1" ? "node2" : "node1";
  ASSERT_TRUE(eventually([&] { return bench::streams(config_, first, second); }));
  pid_t first_pid = postmaster(first), second_pid = postmaster(second);
  bench::WriteProbe probe(bench::node_conninfo(config_, first), milliseconds(20));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 10; }));

  int ports = find_free_ports(2);
  std::string data_dir = dir_ + "/node3";
  auto added_at = WallClock::now();
  std::string out = tandem_ok({"member", "add", "node3", "--port", std::to_string(ports),
                               "--api-port", std::to_string(ports + 1), "--data-dir", data_dir});
  EXPECT_NE(out.find("node3 streams"), std::string::npos) << out;
  config_ = config_on_disk();
  ASSERT_EQ(config_.nodes.size(), 3u);
  EXPECT_TRUE(eventually([&] { return bench::streams(config_, first, "node3"); }));
  // Nobody restarted: the same postmasters, the same leader, no write refused.
  EXPECT_EQ(postmaster(first), first_pid);
  EXPECT_EQ(postmaster(second), second_pid);
  EXPECT_EQ(primary(), first);
  EXPECT_EQ(probe.first_failure_after(added_at), std::nullopt);
  for (const std::string& name : {first, second}) {
    EXPECT_TRUE(took(name, "+node3", 1)) << agent_log(name);
  }

  // The leader's API lists node3 (told the new list, not restarted).
  {
    httplib::Client api(node(first).host, node(first).api_port);
    auto cluster = api.Get("/cluster");
    ASSERT_TRUE(cluster);
    auto document = nlohmann::json::parse(cluster->body, nullptr, false);
    std::set<std::string> members;
    if (document.contains("members")) {
      for (const auto& member : document["members"]) members.insert(member.value("name", ""));
    }
    EXPECT_TRUE(members.contains("node3")) << cluster->body;
  }
  // The running agents know node3: the leader hands the lease to it.
  probe.stop();
  tandem_ok({"switchover", "--to", "node3"});
  ASSERT_TRUE(eventually([&] { return primary() == "node3"; }));
  ASSERT_TRUE(eventually([&] {
    return bench::streams(config_, "node3", first) && bench::streams(config_, "node3", second);
  }));
  pid_t node3_pid = postmaster("node3");
  second_pid = postmaster(second);

  // Refused, nothing changed: a name in use, the leader, a data directory that is not empty.
  expect_refused({"member", "add", second, "--port", "1", "--data-dir", dir_ + "/x"},
                 "already a member");
  expect_refused({"member", "remove", "node3"}, "node3 leads the cluster");
  std::filesystem::create_directories(dir_ + "/busy");
  std::ofstream(dir_ + "/busy/file") << "kept";
  expect_refused(
      {"member", "add", "node4", "--port", std::to_string(ports + 2), "--data-dir", dir_ + "/busy"},
      "not an empty directory");
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/busy/file"));

  std::string removed_dir = node(first).data_dir;
  out = tandem_ok({"member", "remove", first});
  EXPECT_NE(out.find("its data kept in " + removed_dir), std::string::npos) << out;
  EXPECT_FALSE(running_agent(config_, node(first)).has_value());
  EXPECT_FALSE(running_postmaster(removed_dir).has_value());
  EXPECT_TRUE(std::filesystem::exists(removed_dir + "/PG_VERSION"));
  config_ = config_on_disk();
  ASSERT_EQ(config_.nodes.size(), 2u);
  EXPECT_EQ(value("node3", fmt::format("SELECT count(*)::text AS v FROM pg_replication_slots "
                                       "WHERE slot_name = '{}'",
                                       first)),
            "0");
  EXPECT_EQ(postmaster("node3"), node3_pid);
  EXPECT_EQ(postmaster(second), second_pid);
  EXPECT_EQ(primary(), "node3");
  EXPECT_TRUE(bench::streams(config_, "node3", second));
  // Both running agents took the list, the new leader (just promoted) too, keeping its lease.
  EXPECT_TRUE(took("node3", "-" + first, 1)) << agent_log("node3");
  EXPECT_TRUE(took(second, "-" + first, 2)) << agent_log(second);
  EXPECT_EQ(primary(), "node3");
  EXPECT_EQ(postmaster("node3"), node3_pid);
}

}  // namespace
}  // namespace tandem::testing
