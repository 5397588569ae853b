// Members at run time on several machines (issue 17.2): hosts in network namespaces with a
// 3-member etcd, as in multihost_test.cc, and a spare host. `tandem member add` writes the new
// list to etcd, every running agent takes it without restarting PostgreSQL, the new host's agent
// (its tandem.yaml does not list it) reads it there and clones its node; a failover then counts
// over four members; `tandem member remove` stops the removed node's agent on its own host and
// drops its slot. A second change waits until every agent runs the first.
#include "dcs/cluster_layout.h"
#include "multihost_fixture.h"
#include "ops/store_access.h"

namespace tandem::testing {
namespace {

class MultiHostMemberTest : public MultiHostTest {
 protected:
  MultiHostMemberTest() : MultiHostTest(3, 1) {}
  int spare() const { return nodes_ + kEtcdMembers; }
  void adjust(ClusterConfig& config) override {
    config.replication.networks.push_back(network_->address(spare()) + "/32");
  }

  // `tandem ARGS...` run on node1's host (etcd and every node reachable from there).
  ProcessResult tandem(std::vector<std::string> args) {
    args.insert(args.begin(), {"-c", config_path_});
    SystemProcessRunner runner;
    Result<ProcessResult> out = fail(ErrorCode::kFailed, "not run");
    run_in_netns(network_->netns(0), [&] {
      out = runner.run(
          {.program = TANDEM_BINARY, .args = args, .timeout = std::chrono::seconds(120)});
    });
    if (!out) return ProcessResult{.exit_code = -1, .output = out.error().message};
    std::cout << "$ tandem";
    for (const std::string& arg : args) std::cout << " " << arg;
    std::cout << "\n" << out->output;
    return *out;
  }

  // The new node, as the test reaches it: its host's socket directory, one more port of reach_.
  NodeConfig spare_node(const std::string& name) {
    NodeConfig node{.name = name,
                    .host = network_->address(spare()),
                    .port = 5432,
                    .data_dir = dir_ + "/" + name,
                    .api_port = 8008};
    std::string socket_dir = host_socket_dir(spare());
    std::filesystem::create_directories(socket_dir);
    auto postgres = lookup_os_user(config_.os_user);
    EXPECT_TRUE(postgres);
    if (postgres) {
      EXPECT_EQ(chown(socket_dir.c_str(), postgres->uid, postgres->gid), 0);
    }
    int port = 6001 + static_cast<int>(reach_.nodes.size());
    std::filesystem::create_symlink(socket_dir + "/.s.PGSQL.5432",
                                    fmt::format("{}/.s.PGSQL.{}", reach_.socket_dir, port));
    NodeConfig reached = node;
    reached.port = port;
    reach_.nodes.push_back(reached);
    return node;
  }

  // The member list each agent last reported running (`list_acks/<name>`), read from etcd.
  std::map<std::string, std::uint64_t> lists_run() {
    std::map<std::string, std::uint64_t> run;
    run_in_netns(network_->netns(nodes_), [&] {  // an etcd member's host
      SystemClock clock;
      auto store = open_cluster_store(config_, clock);
      if (!store) return;
      ClusterLayout layout(config_.name);
      auto snapshot = (*store)->read(layout.prefix());
      if (!snapshot) return;
      for (const auto& [name, ack] : layout.list_acks(*snapshot)) run[name] = ack.version;
    });
    return run;
  }
  bool all_run_list(const std::vector<std::string>& names, std::uint64_t version) {
    auto run = lists_run();
    return std::all_of(names.begin(), names.end(), [&](const std::string& name) {
      return run.contains(name) && run[name] == version;
    });
  }
  std::optional<pid_t> postmaster_of(const std::string& name) {
    return running_postmaster(config_.find_node(name)->data_dir);
  }
};

TEST_F(MultiHostMemberTest, AMemberAddedAndRemovedWhileWritingCountsInTheNextFailover) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string leader = primary();
  std::map<std::string, pid_t> postmasters;
  for (const NodeConfig& node : config_.nodes) postmasters[node.name] = *postmaster_of(node.name);
  ASSERT_TRUE(eventually([&] {
    return all_run_list({"node1", "node2", "node3"}, 0);
  })) << "the agents never said they run tandem.yaml's list";

  WriteProbe probe(node_conninfo(reach_, leader), milliseconds(10));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 20; }));

  // Added: the list goes to etcd, the three agents take it without restarting PostgreSQL.
  NodeConfig node4 = spare_node("node4");
  ProcessResult added = tandem({"member", "add", "node4", "--host", node4.host, "--port", "5432",
                                "--data-dir", node4.data_dir, "--api-port", "8008"});
  ASSERT_EQ(added.exit_code, 0);
  EXPECT_NE(added.output.find("member list 1"), std::string::npos);
  EXPECT_TRUE(all_run_list({"node1", "node2", "node3"}, 1)) << "add returned before they took it";
  for (const auto& [name, pid] : postmasters) {
    EXPECT_EQ(postmaster_of(name), pid) << name << "'s PostgreSQL was restarted";
  }
  // A second change waits for every agent of the first: node4's has not started. (Of a standby:
  // any node may have won the bootstrap, and the leader's removal is refused first.)
  std::string standby = leader == "node3" ? "node2" : "node3";
  ProcessResult early = tandem({"member", "remove", standby});
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_NE(early.output.find("node4's agent has not reported"), std::string::npos) << early.output;

  // node4's agent on its own host: tandem.yaml does not list it, etcd does. It clones.
  config_.nodes.push_back(node4);
  agents_.push_back(agent_on_host(spare(), "node4"));
  ASSERT_TRUE(eventually([&] { return all_stream_from(leader); }, std::chrono::seconds(120)))
      << "node4 never streamed; see " << agent_log("node4");
  ASSERT_TRUE(eventually([&] { return all_run_list({"node1", "node2", "node3", "node4"}, 1); }));
  probe.stop();
  EXPECT_EQ(refused(probe), 0u) << "writes were refused while the member was added";

  // The primary's host cut off: the three others prove it silent among four and one takes
  // over; nothing it acknowledged after the promotion.
  WriteProbe cut_probe(node_conninfo(reach_, leader), milliseconds(10), "probe_cut");
  cut_probe.start();
  ASSERT_TRUE(eventually([&] { return cut_probe.acknowledged().size() >= 20; }));
  int leader_host = index_of(leader);
  auto cut_at = WallClock::now();
  ASSERT_TRUE(network_->cut(leader_host));
  auto [new_leader, promoted_at] =
      await_takeover("host cut off, 4 members", leader, cut_probe, cut_at);
  ASSERT_FALSE(new_leader.empty());
  ASSERT_TRUE(network_->heal(leader_host));
  ASSERT_TRUE(eventually([&] { return all_stream_from(new_leader); }, std::chrono::seconds(90)))
      << "the old primary did not come back; see " << agent_log(leader);

  // Removed while writing: a standby (node4, unless it leads now).
  std::string gone = new_leader == "node4" ? leader : "node4";
  WriteProbe last_probe(node_conninfo(reach_, new_leader), milliseconds(10), "probe_remove");
  last_probe.start();
  ASSERT_TRUE(eventually([&] { return last_probe.acknowledged().size() >= 20; }));
  ProcessResult removed = tandem({"member", "remove", gone});
  ASSERT_EQ(removed.exit_code, 0);
  EXPECT_NE(removed.output.find("member list 2"), std::string::npos);
  EXPECT_NE(removed.output.find(gone + "'s agent stopped"), std::string::npos);
  EXPECT_FALSE(postmaster_of(gone)) << gone << "'s PostgreSQL still runs";
  EXPECT_TRUE(std::filesystem::exists(config_.find_node(gone)->data_dir + "/PG_VERSION"))
      << "its data is kept";
  EXPECT_EQ(query(new_leader,
                  "SELECT count(*)::text AS v FROM pg_replication_slots WHERE "
                  "slot_name = '" +
                      gone + "'"),
            "0");
  std::vector<std::string> staying;
  for (const NodeConfig& node : config_.nodes) {
    if (node.name != gone) staying.push_back(node.name);
  }
  EXPECT_TRUE(all_run_list(staying, 2));
  std::erase_if(config_.nodes, [&](const NodeConfig& node) { return node.name == gone; });
  EXPECT_TRUE(eventually([&] { return all_stream_from(new_leader); }));
  last_probe.stop();
  EXPECT_EQ(refused(last_probe), 0u) << "writes were refused while the member was removed";
  EXPECT_EQ(primary(), new_leader);
}

}  // namespace
}  // namespace tandem::testing
