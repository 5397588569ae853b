// The hosts of the multi-host tests: two or three nodes, each in a network namespace of its own
// with its own address, every one on port 5432 with a socket directory of its own, coordinating
// through a 3-member etcd cluster on three more hosts (multihost_test.cc, multihost_chaos_test.cc).
#pragma once

#include <arpa/inet.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "../support/child_process.h"
#include "../support/etcd_server.h"
#include "../support/log_tails.h"
#include "../support/test_network.h"
#include "bench/local_queries.h"
#include "bench/write_probe.h"
#include "local/local_cluster.h"
#include "local_cluster_fixture.h"
#include "pg/postmaster.h"
#include "proc/os_user.h"
#include "proc/process_runner.h"
#include "proc/secret_file.h"

namespace tandem::testing {

using bench::node_conninfo;
using bench::WriteAttempt;
using bench::WriteProbe;
using std::chrono::milliseconds;
using WallClock = std::chrono::system_clock;

constexpr int kEtcdMembers = 3;

class MultiHostTest : public ::testing::Test {
 protected:
  // `spare_hosts`: hosts without a node at first (after the etcd members'), for members added
  // at run time.
  // `start_agents`: false for servers a test builds by hand (adopted later).
  explicit MultiHostTest(int nodes = 3, int spare_hosts = 0, bool start_agents = true)
      : nodes_(nodes), spare_hosts_(spare_hosts), start_agents_(start_agents) {}

  void SetUp() override {
    char pattern[] = "/tmp/tandem-hosts-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    chmod(dir_.c_str(), 0755);
    std::filesystem::create_directories(dir_ + "/agent-logs");
    network_ = std::make_unique<TestNetwork>(nodes_ + kEtcdMembers + spare_hosts_);
    ASSERT_EQ(network_->error(), "");
    std::vector<EtcdMember> members;
    for (int index = 0; index < kEtcdMembers; ++index) {
      int host = nodes_ + index;
      members.push_back({.name = fmt::format("etcd{}", index + 1),
                         .host = network_->address(host),
                         .client_port = 2379,
                         .peer_port = 2380,
                         .netns = network_->netns(host)});
    }
    etcd_ = std::make_unique<EtcdCluster>(members, dir_);
    ASSERT_TRUE(etcd_->healthy()) << "etcd did not come up; see " << dir_ << "/etcd-*.log";

    // Each node on its own host, every one on port 5432 with its socket in the same directory,
    // as on separate machines: each agent runs in a mount namespace of its own where a
    // directory of its host is mounted over the socket directory (issue 12).
    config_ = local_config({.dir = dir_, .standbys = nodes_ - 1, .base_port = 5432});
    config_.name = "hosts";
    config_.etcd.endpoints = etcd_->endpoints();
    config_.replication.networks.clear();
    for (int index = 0; index < nodes_; ++index) {
      config_.nodes[index].host = network_->address(index);
      config_.nodes[index].port = 5432;
      config_.nodes[index].api_port = 8008;
      config_.replication.networks.push_back(network_->address(index) + "/32");
    }
    ASSERT_NO_FATAL_FAILURE(adjust(config_));
    ASSERT_TRUE(validate(config_)) << validate(config_).error().message;
    ASSERT_NO_FATAL_FAILURE(make_host_socket_dirs());
    config_path_ = dir_ + "/tandem.yaml";
    std::ofstream(config_path_) << render_config(config_);
    ASSERT_TRUE(ensure_secret_file(config_.api.token_file));
    agents_.resize(nodes_);
    if (!start_agents_) return;
    for (int index = 0; index < nodes_; ++index) start_agent(index);
  }

  // A fixture's changes to the configuration, before tandem.yaml is written.
  virtual void adjust(ClusterConfig& /*config*/) {}

  void TearDown() override {
    agents_.clear();  // each agent stops its PostgreSQL
    for (const NodeConfig& node : config_.nodes) {
      // An agent stopped in the middle of a step (a rejoin, say) leaves its postmaster to the
      // parent-death signal: it exits a moment later.
      eventually([&] { return !running_postmaster(node.data_dir); }, std::chrono::seconds(10));
      if (auto pid = running_postmaster(node.data_dir)) {
        ADD_FAILURE() << node.name << " still ran after its agent stopped";
        kill(*pid, SIGKILL);
      }
    }
    etcd_.reset();
    network_.reset();
    if (!HasFailure()) {
      std::filesystem::remove_all(dir_);
    } else {
      testing::print_log_tails(dir_);
      std::cerr << "kept " << dir_ << " for inspection\n";
    }
  }

  // The socket directory of each host (mounted over config_.socket_dir in its agent's mount
  // namespace), and how the test reaches them all from outside: `reach_`, the same cluster with
  // a socket directory of links, one port per node.
  std::string host_socket_dir(int index) const { return fmt::format("{}/host{}", dir_, index); }
  void make_host_socket_dirs() {
    auto postgres = lookup_os_user(config_.os_user);
    ASSERT_TRUE(postgres);
    reach_ = config_;
    reach_.socket_dir = dir_ + "/reach";
    std::filesystem::create_directories(reach_.socket_dir);
    std::filesystem::create_directories(config_.socket_dir);
    for (int index = 0; index < nodes_; ++index) {
      std::string dir = host_socket_dir(index);
      std::filesystem::create_directories(dir);
      ASSERT_EQ(chown(dir.c_str(), postgres->uid, postgres->gid), 0);
      reach_.nodes[index].port = 6001 + index;
      std::filesystem::create_symlink(
          dir + "/.s.PGSQL.5432", fmt::format("{}/.s.PGSQL.{}", reach_.socket_dir, 6001 + index));
    }
  }

  void start_agent(int index) { agents_[index] = agent_on_host(index, config_.nodes[index].name); }
  // The agent of `name` on host `host`, its socket directory mounted over the shared one.
  std::unique_ptr<ChildProcess> agent_on_host(int host, const std::string& name) {
    // `ip netns exec` gives the command a mount namespace of its own: the mount stays there.
    return std::make_unique<ChildProcess>(ChildOptions{
        .program = "/usr/sbin/ip",
        .args = {"netns", "exec", network_->netns(host), "/bin/sh", "-c",
                 "mount --bind \"$1\" \"$2\" && exec \"$3\" -c \"$4\" agent --node \"$5\"", "sh",
                 host_socket_dir(host), config_.socket_dir, TANDEM_BINARY, config_path_, name},
        .log_file = agent_log(name)});
  }
  std::string agent_log(const std::string& name) const {
    return dir_ + "/agent-logs/" + name + ".log";
  }
  std::string log_of(const std::string& name) const {
    std::ifstream file(agent_log(name));
    return std::string(std::istreambuf_iterator<char>(file), {});
  }

  bool eventually(const std::function<bool()>& done,
                  milliseconds timeout = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return done();
  }

  std::string primary() { return bench::writable_node(reach_); }
  std::string query(const std::string& node, const std::string& sql) {
    return bench::query_value(reach_, node, sql).value_or("");
  }
  // Every other node is a standby whose WAL receiver streams from `primary_node`, over its
  // address (the standby's own view: a clone's pg_basebackup also streams, but is no standby).
  bool all_stream_from(const std::string& primary_node) {
    const NodeConfig& upstream = *config_.find_node(primary_node);
    for (const NodeConfig& node : config_.nodes) {
      if (node.name == primary_node) continue;
      std::string receiver = query(node.name,
                                   "SELECT status || ' ' || sender_host || ':' || sender_port AS v "
                                   "FROM pg_stat_wal_receiver");
      if (receiver != fmt::format("streaming {}:{}", upstream.host, upstream.port)) return false;
    }
    return true;
  }
  int index_of(const std::string& name) const {
    for (int index = 0; index < nodes_; ++index) {
      if (config_.nodes[index].name == name) return index;
    }
    return -1;
  }
  void wait_for_cluster() {
    std::string first;
    ASSERT_TRUE(eventually([&] {
      first = primary();
      return !first.empty() && all_stream_from(first);
    })) << "no primary with two streaming standbys; see "
        << dir_ << "/agent-logs";
  }

  // A fault hits `old_primary` at `fault_at` while `probe` writes to it: waits until another
  // node accepts writes (sampled every few ms), stops the probe, prints both moments and checks
  // that the old primary acknowledged nothing after the new one was promoted.
  struct Takeover {
    std::string new_primary;
    WallClock::time_point promoted_at;
  };
  Takeover await_takeover(const std::string& what, const std::string& old_primary,
                          WriteProbe& probe, WallClock::time_point fault_at) {
    Takeover takeover;
    EXPECT_TRUE(eventually([&] {
      for (const NodeConfig& node : config_.nodes) {
        if (node.name == old_primary) continue;
        if (query(node.name, "SELECT (NOT pg_is_in_recovery())::text AS v") == "true") {
          takeover = {node.name, WallClock::now()};
          return true;
        }
      }
      return false;
    }));
    probe.stop();
    std::optional<WriteAttempt> last_write;
    for (const WriteAttempt& attempt : probe.attempts()) {
      if (attempt.acknowledged) last_write = attempt;
    }
    EXPECT_TRUE(last_write && !takeover.new_primary.empty());
    if (!last_write || takeover.new_primary.empty()) return takeover;
    auto after = [&](WallClock::time_point at) {
      return std::chrono::duration_cast<milliseconds>(at - fault_at).count();
    };
    std::cout << what << ": " << old_primary << "'s last acknowledged write "
              << after(last_write->at) << " ms after, " << takeover.new_primary
              << " accepting writes " << after(takeover.promoted_at) << " ms after\n";
    EXPECT_LT(last_write->at, takeover.promoted_at);
    return takeover;
  }

  // After a failover from `old_primary` (host `old_index`, cut off) to `new_primary`: the new
  // primary takes a write, the old host heals, and the old primary rejoins by pg_rewind,
  // streams from the new one and has that write.
  void expect_rejoin_by_rewind(int old_index, const std::string& old_primary,
                               const std::string& new_primary) {
    auto connection = Connection::open(node_conninfo(reach_, new_primary));
    ASSERT_TRUE(connection);
    EXPECT_TRUE(connection->execute("CREATE TABLE after_cut AS SELECT 1 AS n"));
    ASSERT_TRUE(network_->heal(old_index));
    EXPECT_TRUE(eventually([&] { return all_stream_from(new_primary); }))
        << "see " << agent_log(old_primary);
    EXPECT_TRUE(eventually(
        [&] { return query(old_primary, "SELECT n::text AS v FROM after_cut") == "1"; }));
    EXPECT_NE(log_of(old_primary).find("pg_rewind"), std::string::npos);
  }

  // Writes `probe` attempted but was refused, the first few printed with their error.
  static std::size_t refused(const WriteProbe& probe) {
    std::size_t count = 0;
    for (const WriteAttempt& attempt : probe.attempts()) {
      if (attempt.acknowledged) continue;
      if (++count <= 3) std::cout << "refused write " << attempt.sequence << ": " << attempt.error;
    }
    return count;
  }
  // The longest time without an acknowledged write since `from`: writes went on, whatever the
  // machine's speed, when it stays short.
  static milliseconds longest_gap(const WriteProbe& probe, WallClock::time_point from) {
    WallClock::duration gap{};
    auto last = from;
    for (const WriteAttempt& attempt : probe.attempts()) {
      if (!attempt.acknowledged || attempt.answered_at < from) continue;
      gap = std::max(gap, attempt.answered_at - last);
      last = attempt.answered_at;
    }
    return std::chrono::duration_cast<milliseconds>(std::max(gap, WallClock::now() - last));
  }
  // True when `leader` stayed the one writable node for `period`.
  bool stays_primary(const std::string& leader, milliseconds period) {
    auto until = std::chrono::steady_clock::now() + period;
    while (std::chrono::steady_clock::now() < until) {
      for (const NodeConfig& node : config_.nodes) {
        bool writable = query(node.name, "SELECT (NOT pg_is_in_recovery())::text AS v") == "true";
        if (writable != (node.name == leader)) {
          std::cout << node.name << (writable ? " is writable\n" : " is not writable\n");
          return false;
        }
      }
      std::this_thread::sleep_for(milliseconds(200));
    }
    return true;
  }

  // Every process of a host (its agent, the agent's watchdog, its PostgreSQL), for freezing
  // the whole host as a hypervisor stun or a cgroup freezer does.
  std::vector<pid_t> host_pids(int index) {
    std::vector<pid_t> pids;
    std::string command = "ip netns pids " + network_->netns(index);
    FILE* out = popen(command.c_str(), "r");
    if (out == nullptr) return pids;
    int pid = 0;
    while (fscanf(out, "%d", &pid) == 1) pids.push_back(pid);
    pclose(out);
    return pids;
  }
  // The etcd members' hosts.
  std::vector<int> etcd_hosts() const {
    std::vector<int> hosts;
    for (int member = 0; member < kEtcdMembers; ++member) hosts.push_back(nodes_ + member);
    return hosts;
  }
  std::string api_token() const {
    std::ifstream file(config_.api.token_file);
    std::string token;
    std::getline(file, token);
    return token;
  }
  // The node that accepts writes first among the others than `old_primary` (polled every
  // 20 ms), and when it was seen to.
  std::optional<std::pair<std::string, WallClock::time_point>> await_other_primary(
      const std::string& old_primary, milliseconds timeout) {
    std::optional<std::pair<std::string, WallClock::time_point>> found;
    eventually(
        [&] {
          for (const NodeConfig& node : config_.nodes) {
            if (node.name == old_primary) continue;
            if (query(node.name, "SELECT (NOT pg_is_in_recovery())::text AS v") == "true") {
              found.emplace(node.name, WallClock::now());
              return true;
            }
          }
          return false;
        },
        timeout);
    return found;
  }
  // Acknowledged writes answered at or after `since` (and sent at or after `sent_since`, where
  // given), the first few printed.
  static std::size_t acknowledged_after(
      const WriteProbe& probe, WallClock::time_point since, const std::string& what,
      std::optional<WallClock::time_point> sent_since = std::nullopt) {
    std::size_t count = 0;
    for (const WriteAttempt& attempt : probe.attempts()) {
      if (!attempt.acknowledged || attempt.answered_at < since) continue;
      if (sent_since && attempt.at < *sent_since) continue;
      if (++count <= 3) std::cout << what << " acknowledged write " << attempt.sequence << "\n";
    }
    return count;
  }

  int nodes_;
  int spare_hosts_;
  bool start_agents_;
  std::string dir_;
  std::string config_path_;
  ClusterConfig config_;  // what the agents run (tandem.yaml)
  ClusterConfig reach_;   // how the test reaches the nodes' sockets
  std::unique_ptr<TestNetwork> network_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
};

}  // namespace tandem::testing
