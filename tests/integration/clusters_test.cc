// Several clusters on one etcd (issue 12): three local clusters with distinct names, each a
// primary and a standby with agents, share one etcd. A host crash in one fails it over on its own
// while the others keep writing, untouched.
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "../support/etcd_server.h"
#include "../support/log_tails.h"
#include "bench/local_queries.h"
#include "bench/write_probe.h"
#include "local/local_agents.h"
#include "local/local_cluster.h"
#include "local_cluster_fixture.h"
#include "pg/postmaster.h"
#include "proc/process_runner.h"

namespace tandem::testing {
namespace {

using bench::WriteAttempt;
using bench::WriteProbe;
using std::chrono::milliseconds;
using WallClock = std::chrono::system_clock;

struct Cluster {
  std::string dir;
  std::string config_path;
  ClusterConfig config;
  std::unique_ptr<WriteProbe> probe;
};

class SeveralClustersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/tandem-clusters-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
    etcd_ = EtcdCluster::single(dir_);
    ASSERT_TRUE(etcd_->healthy()) << "etcd did not come up; see " << dir_;
    int ports = find_free_ports(4 * 3);
    for (std::string name : {"alpha", "beta", "gamma"}) {
      Cluster cluster;
      cluster.dir = dir_ + "/" + name;
      std::filesystem::create_directories(cluster.dir);
      ASSERT_EQ(chmod(cluster.dir.c_str(), 0755), 0);
      cluster.config_path = cluster.dir + "/tandem.yaml";
      cluster.config = local_config({.dir = cluster.dir,
                                     .standbys = 1,
                                     .base_port = ports,
                                     .api_base_port = ports + 2,
                                     .agents = true});
      ports += 4;
      cluster.config.name = name;
      cluster.config.etcd.endpoints = etcd_->endpoints();
      std::ofstream(cluster.config_path) << render_config(cluster.config);
      clusters_.push_back(std::move(cluster));
    }
    for (Cluster& cluster : clusters_) ASSERT_EQ(tandem(cluster, {"local", "up"}), 0);
  }

  void TearDown() override {
    for (Cluster& cluster : clusters_) {
      cluster.probe.reset();
      EXPECT_EQ(tandem(cluster, {"local", "down"}), 0);
      for (const NodeConfig& node : cluster.config.nodes) {
        if (auto agent = running_agent(cluster.config, node)) {
          ADD_FAILURE() << "the agent of " << node.name << " still ran after `local down`";
          kill(*agent, SIGKILL);
        }
        if (auto pid = running_postmaster(node.data_dir)) {
          ADD_FAILURE() << node.name << " still ran after `local down`";
          kill(*pid, SIGKILL);
        }
      }
    }
    etcd_.reset();
    if (!HasFailure()) {
      std::filesystem::remove_all(dir_);
    } else {
      // CI keeps the output's head and tail only: the logs of the cluster that failed, alone.
      if (suspects_.empty()) testing::print_log_tails(dir_);
      for (const std::string& name : suspects_) testing::print_log_tails(dir_ + "/" + name, 60);
      std::cerr << "kept " << dir_ << " for inspection\n";
    }
  }

  int tandem(const Cluster& cluster, std::vector<std::string> args) {
    args.insert(args.begin(), {"-c", cluster.config_path});
    if (args[2] == "local" && args[3] == "up") args.insert(args.end(), {"--dir", cluster.dir});
    SystemProcessRunner runner;
    auto result = runner.run({.program = TANDEM_BINARY,
                              .args = args,
                              .working_dir = cluster.dir,
                              .timeout = std::chrono::minutes(3)});
    if (!result) return -1;
    if (result->exit_code != 0) std::cout << result->output;
    return result->exit_code;
  }

  static std::string primary(const Cluster& cluster) {
    return bench::writable_node(cluster.config);
  }
  static bool standby_streams(const Cluster& cluster, const std::string& leader) {
    for (const NodeConfig& node : cluster.config.nodes) {
      if (node.name != leader && !bench::streams(cluster.config, leader, node.name)) return false;
    }
    return true;
  }
  static std::size_t refused(const WriteProbe& probe) {
    std::size_t count = 0;
    for (const WriteAttempt& attempt : probe.attempts()) {
      if (!attempt.acknowledged && count++ == 0) last_error_ = attempt.error;
    }
    return count;
  }
  static inline std::string last_error_;

  bool eventually(const std::function<bool()>& done,
                  milliseconds timeout = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return done();
  }

  std::string dir_;
  std::set<std::string> suspects_;  // the clusters a failure was seen in
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<Cluster> clusters_;
};

TEST_F(SeveralClustersTest, EachFailsOverOnItsOwnWhileTheOthersKeepWriting) {
  std::vector<std::string> leaders;
  for (Cluster& cluster : clusters_) {
    std::string leader;
    ASSERT_TRUE(eventually([&] {
      leader = primary(cluster);
      return !leader.empty() && standby_streams(cluster, leader);
    })) << cluster.config.name
        << " has no primary with a streaming standby";
    leaders.push_back(leader);
    // Through every node with target_session_attrs=read-write: it follows a failover.
    cluster.probe =
        std::make_unique<WriteProbe>(bench::any_primary_conninfo(cluster.config), milliseconds(20));
    cluster.probe->start();
  }
  // One crash in each cluster in turn: it fails over; the others change nothing.
  for (std::size_t crashed = 0; crashed < clusters_.size(); ++crashed) {
    Cluster& victim = clusters_[crashed];
    suspects_.insert(victim.config.name);  // until it has failed over and rejoined
    std::vector<std::size_t> refused_before;
    for (Cluster& cluster : clusters_) refused_before.push_back(refused(*cluster.probe));
    auto crash_at = std::chrono::steady_clock::now();
    ASSERT_EQ(tandem(victim, {"local", "crash", leaders[crashed]}), 0);
    std::string successor;
    ASSERT_TRUE(eventually([&] {
      successor = primary(victim);
      return !successor.empty() && successor != leaders[crashed];
    })) << victim.config.name
        << " did not fail over";
    std::cout << victim.config.name << ": " << successor << " accepts writes "
              << std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() -
                                                          crash_at)
                     .count()
              << " ms after the crash\n";
    // The crashed node comes back as a standby of the new primary.
    ASSERT_EQ(tandem(victim, {"local", "start", leaders[crashed]}), 0);
    EXPECT_TRUE(eventually([&] { return standby_streams(victim, successor); }))
        << victim.config.name << ": " << leaders[crashed] << " does not follow " << successor;
    for (std::size_t other = 0; other < clusters_.size(); ++other) {
      if (other == crashed) continue;
      if (primary(clusters_[other]) != leaders[other])
        suspects_.insert(clusters_[other].config.name);
      EXPECT_EQ(primary(clusters_[other]), leaders[other])
          << clusters_[other].config.name << " changed primary";
      EXPECT_EQ(refused(*clusters_[other].probe), refused_before[other])
          << clusters_[other].config.name << " refused writes while " << victim.config.name
          << " failed over (" << last_error_ << ")";
    }
    if (!HasFailure()) suspects_.erase(victim.config.name);
    leaders[crashed] = successor;
  }
}

}  // namespace
}  // namespace tandem::testing
