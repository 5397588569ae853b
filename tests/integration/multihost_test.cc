// tandem across separate hosts: two or three nodes, each in a network namespace of its own with
// its own address, every one on port 5432 with a socket directory of its own, coordinating
// through a 3-member etcd cluster on three more hosts. Hosts are cut off and healed; etcd members
// are stopped. Writes are probed straight at the primary over its Unix socket, which no network
// cut reaches. Timings are printed, never asserted (but for "writes went on": no pause of 2 s).
#include "multihost_fixture.h"

namespace tandem::testing {
namespace {

// The primary's host cut off from everything, etcd and the other agents alike.
TEST_F(MultiHostTest, ACutOffPrimaryStopsWritingBeforeAnotherIsPromotedAndRejoinsAfterHealing) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string old_primary = primary();
  int old_index = index_of(old_primary);
  // Replication really crosses the hosts: the standbys connect from their own addresses.
  std::string clients = query(old_primary,
                              "SELECT string_agg(client_addr::text, ',' ORDER BY client_addr) "
                              "AS v FROM pg_stat_replication");
  for (int index = 0; index < nodes_; ++index) {
    if (index == old_index) continue;
    EXPECT_NE(clients.find(network_->address(index)), std::string::npos) << clients;
  }

  WriteProbe probe(node_conninfo(reach_, old_primary), milliseconds(10));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 20; }));
  auto cut_at = WallClock::now();
  ASSERT_TRUE(network_->cut(old_index));

  auto [new_primary, promoted_at] = await_takeover("host cut off", old_primary, probe, cut_at);
  ASSERT_FALSE(new_primary.empty());
  // The cut-off primary refused writes (errors, not silence) before the promotion.
  auto refused = probe.first_failure_after(cut_at);
  ASSERT_TRUE(refused) << "the cut-off primary never refused a write";
  EXPECT_LT(refused->at, promoted_at);
  EXPECT_EQ(query(old_primary, "SELECT 1::text AS v"), "") << "the old primary still serves";

  // The new primary takes writes; healed, the old primary rejoins by pg_rewind.
  ASSERT_NO_FATAL_FAILURE(expect_rejoin_by_rewind(old_index, old_primary, new_primary));
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().filename().string().find(".diverged-"), std::string::npos)
        << "recloned instead of rewound: " << entry.path();
  }
  EXPECT_EQ(primary(), new_primary);
}

// The primary still reaches etcd, but none of the other agents (issue 12): its lease keeps it
// writing, and nobody takes over — the standbys see the lease renewed. Healed, they stream again.
TEST_F(MultiHostTest, APrimaryCutOffFromTheOtherAgentsButNotFromEtcdKeepsWriting) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string leader = primary();
  int leader_index = index_of(leader);
  std::vector<int> others;
  for (int index = 0; index < nodes_; ++index) {
    if (index != leader_index) others.push_back(index);
  }
  WriteProbe probe(node_conninfo(reach_, leader), milliseconds(20));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 10; }));
  auto cut_at = WallClock::now();
  ASSERT_TRUE(network_->block(leader_index, others));
  EXPECT_TRUE(stays_primary(leader, std::chrono::seconds(10)));
  EXPECT_EQ(refused(probe), 0u) << "the primary refused writes";
  std::cout << "cut off from the agents only for 10 s: writes at most "
            << longest_gap(probe, cut_at).count() << " ms apart\n";
  EXPECT_LT(longest_gap(probe, cut_at), std::chrono::seconds(2));
  EXPECT_NE(log_of(leader).find("the lease alone keeps it writing"), std::string::npos);
  for (int index : others) {
    EXPECT_NE(log_of(config_.nodes[index].name).find("it may still write; no takeover"),
              std::string::npos);
  }
  ASSERT_TRUE(network_->unblock(leader_index, others));
  EXPECT_TRUE(eventually([&] { return all_stream_from(leader); })) << "see " << dir_;
  probe.stop();
  EXPECT_EQ(refused(probe), 0u);
  EXPECT_EQ(primary(), leader);
}

// Both standbys' hosts down for maintenance (issue 12): a majority of the agents is gone, but
// the primary still renews its lease in etcd, so it keeps writing. Back, they stream again.
TEST_F(MultiHostTest, BothStandbysHostsDownRefuseNoWrite) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string leader = primary();
  WriteProbe probe(node_conninfo(reach_, leader), milliseconds(20));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 10; }));
  auto cut_at = WallClock::now();
  for (int index = 0; index < nodes_; ++index) {
    if (index == index_of(leader)) continue;
    ASSERT_TRUE(network_->cut(index));
  }
  EXPECT_TRUE(stays_primary(leader, std::chrono::seconds(10)));
  EXPECT_EQ(refused(probe), 0u) << "the primary refused writes while its standbys were away";
  std::cout << "both standbys' hosts away for 10 s: " << refused(probe)
            << " writes refused, at most " << longest_gap(probe, cut_at).count() << " ms apart\n";
  EXPECT_LT(longest_gap(probe, cut_at), std::chrono::seconds(2));
  for (int index = 0; index < nodes_; ++index) {
    if (index == index_of(leader)) continue;
    ASSERT_TRUE(network_->heal(index));
  }
  EXPECT_TRUE(eventually([&] { return all_stream_from(leader); })) << "see " << dir_;
  EXPECT_TRUE(stays_primary(leader, std::chrono::seconds(2)));
  probe.stop();
  EXPECT_EQ(refused(probe), 0u);
}

// The primary's agent frozen (SIGSTOP) while its PostgreSQL runs on: the agent cannot fence, so
// its watchdog does, before a standby takes over. Thawed, the agent rejoins its node.
TEST_F(MultiHostTest, AFrozenPrimaryAgentsWatchdogStopsWritesBeforeATakeover) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string old_primary = primary();
  int old_index = index_of(old_primary);
  WriteProbe probe(node_conninfo(reach_, old_primary), milliseconds(10));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 20; }));
  auto frozen_at = WallClock::now();
  ASSERT_EQ(kill(agents_[old_index]->pid(), SIGSTOP), 0);
  auto [new_primary, promoted_at] = await_takeover("agent frozen", old_primary, probe, frozen_at);
  ASSERT_FALSE(new_primary.empty());
  ASSERT_EQ(kill(agents_[old_index]->pid(), SIGCONT), 0);
  EXPECT_TRUE(eventually([&] { return all_stream_from(new_primary); }))
      << "see " << agent_log(old_primary);
  EXPECT_NE(log_of(old_primary).find("the watchdog stopped PostgreSQL"), std::string::npos);
}

TEST_F(MultiHostTest, EtcdDownChangesNothingWhileThePrimaryReachesTheOtherAgents) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string leader = primary();
  WriteProbe probe(node_conninfo(reach_, leader), milliseconds(20));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 10; }));

  // One etcd member down: nothing changes.
  etcd_->stop(0);
  EXPECT_TRUE(stays_primary(leader, std::chrono::seconds(3)));
  EXPECT_EQ(refused(probe), 0u);
  etcd_->start(0);
  ASSERT_TRUE(etcd_->wait_until_healthy(std::chrono::seconds(20)));

  // All of etcd down for 30 s: the primary reaches both other agents, so it keeps writing and
  // nobody takes over.
  std::size_t acknowledged_before = probe.acknowledged().size();
  auto outage_began = WallClock::now();
  for (int member = 0; member < kEtcdMembers; ++member) etcd_->stop(member);
  EXPECT_TRUE(stays_primary(leader, std::chrono::seconds(30)));
  EXPECT_EQ(refused(probe), 0u) << "the primary refused writes while etcd was down";
  milliseconds gap = longest_gap(probe, outage_began);
  std::cout << probe.acknowledged().size() - acknowledged_before
            << " writes acknowledged during the 30 s without etcd, at most " << gap.count()
            << " ms apart\n";
  EXPECT_LT(gap, std::chrono::seconds(2));
  EXPECT_NE(log_of(leader).find("the store is unreachable, but a majority"), std::string::npos);

  // etcd back: everything resumes, same primary, standbys streaming, the lease renewed.
  for (int member = 0; member < kEtcdMembers; ++member) etcd_->start(member);
  ASSERT_TRUE(etcd_->wait_until_healthy(std::chrono::seconds(30)));
  EXPECT_TRUE(stays_primary(leader, std::chrono::seconds(3)));
  EXPECT_TRUE(all_stream_from(leader));
  EXPECT_TRUE(eventually([&] {
    std::string log = log_of(leader);
    auto resumed = log.rfind("renew-lease");
    auto outage = log.rfind("the store is unreachable");
    return resumed != std::string::npos && outage != std::string::npos && resumed > outage;
  }));
  probe.stop();
  EXPECT_EQ(refused(probe), 0u);
}

// Issue 11: slow sockets on the standbys' APIs stopped the agents' pings, and the primary, losing
// its majority, fenced itself. Now a host holding as many slow and idle connections to every
// other node's API as it can (its address is capped; the rest are refused) changes nothing: the
// primary keeps writing, nobody takes over.
TEST_F(MultiHostTest, SlowClientsOnTheStandbysApisChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string leader = primary();
  WriteProbe probe(node_conninfo(reach_, leader), milliseconds(20));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 10; }));
  // The attacker is an etcd host: an address that is no node's.
  std::vector<int> held;
  ASSERT_TRUE(run_in_netns(network_->netns(nodes_), [&] {
    for (const NodeConfig& node : config_.nodes) {
      if (node.name == leader) continue;
      for (int index = 0; index < 500; ++index) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in remote{.sin_family = AF_INET, .sin_port = htons(node.api_port)};
        inet_pton(AF_INET, node.host.c_str(), &remote.sin_addr);
        if (connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
          close(fd);
          continue;
        }
        if (index % 2 == 0) {
          std::string start = "GET /health HTTP/1.1\r\nHost: " + node.host + "\r\n";
          send(fd, start.data(), start.size(), MSG_NOSIGNAL);
        }
        held.push_back(fd);
      }
    }
  }));
  // A header line every 3 s for 12 s, as the attack did.
  for (int round = 0; round < 4; ++round) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < until) {
      EXPECT_EQ(primary(), leader) << "a failover during the attack";
      std::this_thread::sleep_for(milliseconds(200));
    }
    for (int fd : held) send(fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL);
  }
  for (int fd : held) close(fd);
  probe.stop();
  std::size_t refused = 0;
  for (const WriteAttempt& attempt : probe.attempts()) refused += attempt.acknowledged ? 0 : 1;
  EXPECT_EQ(refused, 0u) << "the primary refused writes: it fenced itself during the attack";
  EXPECT_EQ(log_of(leader).find("no answer from a majority of the agents"), std::string::npos);
  std::cout << probe.acknowledged().size() << " writes acknowledged, " << refused
            << " refused, while " << held.size()
            << " connections to the standbys' APIs were attempted\n";
}

// Issue 16.4: the primary loses etcd only and keeps writing through its majority, as designed;
// then its PostgreSQL dies. It may not write again without renewing its lease, which it cannot,
// so it answers the others' pings "may not write" and one of them takes over: within a ping
// round, a cycle, a lease write and a promotion (well under a second here); asserted within
// 10 s. Meanwhile its agent restarts no writable primary.
TEST_F(MultiHostTest, APrimaryCutOffFromEtcdWhosePostgresDiesIsReplaced) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string old_primary = primary();
  int old_index = index_of(old_primary);
  WriteProbe probe(node_conninfo(reach_, old_primary), milliseconds(20));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 10; }));
  ASSERT_TRUE(network_->block(old_index, etcd_hosts()));
  EXPECT_TRUE(stays_primary(old_primary, std::chrono::seconds(3)));
  EXPECT_EQ(refused(probe), 0u) << "the primary stopped writing without etcd";
  auto postmaster = running_postmaster(config_.nodes[old_index].data_dir);
  ASSERT_TRUE(postmaster);
  auto died_at = WallClock::now();
  ASSERT_EQ(kill(*postmaster, SIGKILL), 0);
  auto taken = await_other_primary(old_primary, std::chrono::seconds(10));
  ASSERT_TRUE(taken) << "nobody took over within 10 s of the death of the PostgreSQL of a "
                        "primary cut off from etcd; see "
                     << dir_;
  std::cout << "the PostgreSQL of a primary cut off from etcd killed: " << taken->first
            << " accepts writes "
            << std::chrono::duration_cast<milliseconds>(taken->second - died_at).count()
            << " ms after\n";
  // Still cut off from etcd: the old primary never writes again (the probe keeps trying).
  EXPECT_TRUE(stays_primary(taken->first, std::chrono::seconds(5)));
  probe.stop();
  // Dated from the takeover: a commit under way when the postmaster was killed may still be
  // acknowledged by its backend, before any other node writes.
  EXPECT_EQ(acknowledged_after(probe, taken->second, old_primary), 0u);
  ASSERT_TRUE(network_->unblock(old_index, etcd_hosts()));
  EXPECT_TRUE(eventually([&] { return all_stream_from(taken->first); }))
      << "see " << agent_log(old_primary);
}

// Issue 16.8: a fourth host asks both standbys' agents `/ping?from=<primary>` every 50 ms
// without the API token, then the primary's host is cut off: the spoofed pings are refused and
// count for nothing; a standby takes over as it does without them.
TEST_F(MultiHostTest, SpoofedPingsDoNotHoldBackAFailover) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string old_primary = primary();
  std::atomic<bool> stopping{false};
  std::atomic<int> sent{0}, unauthorized{0};
  std::thread spoofer([&] {
    run_in_netns(network_->netns(nodes_), [&] {
      while (!stopping.load()) {
        for (const NodeConfig& node : config_.nodes) {
          if (node.name == old_primary) continue;
          httplib::Client client(node.host, node.api_port);
          client.set_connection_timeout(milliseconds(200));
          auto reply = client.Get("/ping?from=" + old_primary);
          ++sent;
          if (reply && reply->status == 401) ++unauthorized;
        }
        std::this_thread::sleep_for(milliseconds(50));
      }
    });
  });
  EXPECT_TRUE(eventually([&] { return sent.load() >= 20; }));
  WriteProbe probe(node_conninfo(reach_, old_primary), milliseconds(10));
  probe.start();
  EXPECT_TRUE(eventually([&] { return probe.acknowledged().size() >= 20; }));
  auto cut_at = WallClock::now();
  EXPECT_TRUE(network_->cut(index_of(old_primary)));
  auto takeover =
      await_takeover("host cut off while pings were spoofed", old_primary, probe, cut_at);
  stopping.store(true);
  spoofer.join();
  ASSERT_FALSE(takeover.new_primary.empty());
  std::cout << sent.load() << " spoofed pings, " << unauthorized.load() << " refused (401)\n";
  EXPECT_GE(sent.load(), 20);
  EXPECT_EQ(unauthorized.load(), sent.load()) << "a ping without the token was answered";
  ASSERT_TRUE(network_->heal(index_of(old_primary)));
  EXPECT_TRUE(eventually([&] { return all_stream_from(takeover.new_primary); }))
      << "see " << agent_log(old_primary);
}

// Issue 16.3: every process of the primary's host frozen for 4 s (a hypervisor stun), its routes
// to etcd cut during the freeze and for 10 s after it. Another node takes over meanwhile; after
// the thaw the old primary, whose pinger now hears agents that follow the new leader, writes
// nothing, and the new primary stays the only one.
TEST_F(MultiHostTest, AFrozenPrimaryHostCutOffFromEtcdWritesNothingAfterItsThaw) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string old_primary = primary();
  int old_index = index_of(old_primary);
  {
    // Stopped before the freeze: no write of it is in flight when the host thaws.
    WriteProbe before(node_conninfo(reach_, old_primary), milliseconds(10));
    before.start();
    ASSERT_TRUE(eventually([&] { return before.acknowledged().size() >= 20; }));
  }
  // The table the probe after the thaw writes to, there beforehand: a refused write is refused
  // for being read-only or down, never for a missing table.
  WriteProbe after(node_conninfo(reach_, old_primary), milliseconds(10), "probe_after_thaw");
  std::vector<pid_t> frozen = host_pids(old_index);
  ASSERT_GE(frozen.size(), 3u);  // agent, watchdog, postmaster...
  for (pid_t pid : frozen) kill(pid, SIGSTOP);
  auto thaw_at = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  EXPECT_TRUE(network_->block(old_index, etcd_hosts()));
  auto taken = await_other_primary(old_primary, std::chrono::seconds(3));
  std::this_thread::sleep_until(thaw_at);
  for (pid_t pid : frozen) kill(pid, SIGCONT);
  auto thawed_at = WallClock::now();
  after.start();
  ASSERT_TRUE(taken) << "nobody took over while the primary's host was frozen";
  EXPECT_TRUE(stays_primary(taken->first, std::chrono::seconds(10)));
  after.stop();
  EXPECT_EQ(acknowledged_after(after, thawed_at, old_primary + " after its thaw"), 0u);
  ASSERT_TRUE(network_->unblock(old_index, etcd_hosts()));
  EXPECT_TRUE(eventually([&] { return all_stream_from(taken->first); }))
      << "see " << agent_log(old_primary);
}

// Issue 16.5: a restart of the primary requested through its API, its host cut off 0.3 s
// later. Whether the restart ends before or in the cut, the old primary acknowledges no write
// once another node accepts them.
TEST_F(MultiHostTest, APrimaryRestartedThroughTheApiAndCutOffWritesNothingAfterATakeover) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string old_primary = primary();
  int old_index = index_of(old_primary);
  const NodeConfig& old_node = config_.nodes[old_index];
  WriteProbe probe(node_conninfo(reach_, old_primary), milliseconds(10));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 20; }));
  std::string token = api_token();
  ASSERT_FALSE(token.empty());
  std::atomic<int> status{0};
  std::thread asking([&] {
    run_in_netns(network_->netns(nodes_), [&] {
      httplib::Client client(old_node.host, old_node.api_port);
      client.set_read_timeout(std::chrono::seconds(15));
      auto reply =
          client.Post("/restart", {{"Authorization", "Bearer " + token}}, "{}", "application/json");
      status = reply ? reply->status : -1;
    });
  });
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_TRUE(network_->cut(old_index));
  auto taken = await_other_primary(old_primary, std::chrono::seconds(60));
  ASSERT_TRUE(taken) << "nobody took over; see " << dir_;
  EXPECT_TRUE(stays_primary(taken->first, std::chrono::seconds(10)));
  probe.stop();
  asking.join();
  std::cout << "restart requested, host cut off 0.3 s later: the request answered " << status.load()
            << " (-1: no answer), " << taken->first << " leads\n";
  EXPECT_EQ(acknowledged_after(probe, taken->second, old_primary), 0u);
  ASSERT_TRUE(network_->heal(old_index));
  EXPECT_TRUE(eventually([&] { return all_stream_from(taken->first); }))
      << "see " << agent_log(old_primary);
}

// Quorum commit across hosts (issue 20.5): any one of two standbys. Every process of the
// primary's host frozen for 4 s: both standbys stop their WAL receivers, promise where, and one
// takes over with every acknowledged write; thawed, the old primary acknowledges nothing more.
class MultiHostQuorumTest : public MultiHostTest {
 protected:
  void adjust(ClusterConfig& config) override {
    config.ha.synchronous_mode = true;
    config.ha.synchronous_quorum = true;
  }
};

TEST_F(MultiHostQuorumTest, AFrozenPrimaryHostFailsOverWithEveryWriteAndAcknowledgesNoneAfter) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string old_primary = primary();
  int old_index = index_of(old_primary);
  ASSERT_TRUE(eventually([&] {
    return query(old_primary, "SELECT current_setting('synchronous_standby_names') AS v")
               .starts_with("ANY 1 (") &&
           log_of(old_primary).find("every acknowledged commit is on any 1 of") !=
               std::string::npos;
  })) << "see "
      << agent_log(old_primary);
  WriteProbe probe(node_conninfo(reach_, old_primary), milliseconds(10));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 50; }));
  std::vector<pid_t> frozen = host_pids(old_index);
  ASSERT_GE(frozen.size(), 3u);  // agent, watchdog, postmaster...
  for (pid_t pid : frozen) kill(pid, SIGSTOP);
  auto frozen_at = WallClock::now();
  auto thaw_at = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  auto taken = await_other_primary(old_primary, std::chrono::seconds(3));
  std::this_thread::sleep_until(thaw_at);
  for (pid_t pid : frozen) kill(pid, SIGCONT);
  auto thawed_at = WallClock::now();
  ASSERT_TRUE(taken) << "nobody took over while the primary's host was frozen";
  EXPECT_TRUE(stays_primary(taken->first, std::chrono::seconds(5)));
  probe.stop();
  // A write sent before the freeze may still be answered after the thaw (CI on ce3e701; 1 in 28
  // runs here): its commit had reached a standby of the quorum, whose reply waited in the frozen
  // host's socket until the WAL sender, thawed, read it before the watchdog stopped PostgreSQL.
  // That write is on the new primary (missing_on, below, counts every acknowledged one). A write
  // sent once the host froze is never acknowledged.
  std::size_t answered_late = acknowledged_after(probe, thawed_at, old_primary + " after its thaw");
  EXPECT_EQ(acknowledged_after(probe, thawed_at, old_primary + " sent during the freeze or after",
                               frozen_at),
            0u);
  auto missing = probe.missing_on(node_conninfo(reach_, taken->first));
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->size(), 0u) << "acknowledged writes missing on " << taken->first;
  for (int index = 0; index < nodes_; ++index) {
    std::string name = config_.nodes[index].name;
    if (index == old_index) continue;
    EXPECT_NE(log_of(name).find("stop the WAL receiver (freeze)"), std::string::npos)
        << "see " << agent_log(name);
  }
  std::cout << "quorum commit across hosts: " << taken->first << " took over "
            << std::chrono::duration_cast<milliseconds>(taken->second - frozen_at).count()
            << " ms after the freeze, " << probe.acknowledged().size() << " acknowledged writes, "
            << missing->size() << " missing, " << answered_late << " answered after the thaw\n";
  EXPECT_TRUE(eventually([&] { return all_stream_from(taken->first); }))
      << "see " << agent_log(old_primary);
}

class MultiHostPromoterTest : public MultiHostTest {};

// Issue 16.2 across hosts: a switchover, and the target's agent frozen for 4 s the moment its
// PostgreSQL has the request to promote (its watchdog, a process of its own, and its PostgreSQL run
// on). Each node is probed all along: the acknowledged writes, in the order they were answered,
// come from one node after another — never back and forth between two writers.
TEST_F(MultiHostPromoterTest, APromoterFrozenMidPromotionNeverWritesBesideAnother) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string old_primary = primary();
  std::string target;
  for (const NodeConfig& node : config_.nodes) {
    if (node.name != old_primary) target = node.name;
  }
  std::vector<std::unique_ptr<WriteProbe>> probes;
  for (const NodeConfig& node : config_.nodes) {
    // Each node's table created through the primary, so that every probe starts at once.
    WriteProbe create(node_conninfo(reach_, old_primary), milliseconds(10), "probe_" + node.name);
  }
  ASSERT_TRUE(eventually([&] { return all_stream_from(old_primary); }));
  for (const NodeConfig& node : config_.nodes) {
    probes.push_back(std::make_unique<WriteProbe>(node_conninfo(reach_, node.name),
                                                  milliseconds(10), "probe_" + node.name));
    probes.back()->start();
  }
  PromoteRequestWatch request(config_.log_dir + "/" + target + ".log");
  std::size_t log_from = log_of(target).size();
  std::string token = api_token();
  const NodeConfig& asked = *config_.find_node(old_primary);
  std::atomic<int> status{0};
  std::string answer;
  std::thread asking([&] {
    run_in_netns(network_->netns(nodes_), [&] {
      httplib::Client client(asked.host, asked.api_port);
      client.set_read_timeout(std::chrono::seconds(60));
      // Asked again while the target's agent has yet to publish it as a standby (412).
      for (int attempt = 0; attempt < 100; ++attempt) {
        auto reply = client.Post("/switchover", {{"Authorization", "Bearer " + token}},
                                 "{\"candidate\": \"" + target + "\"}", "application/json");
        answer = reply ? reply->body : "no answer";
        if (reply && reply->status == 412 && attempt < 99) {
          std::this_thread::sleep_for(milliseconds(100));
          continue;
        }
        status = reply ? reply->status : -1;
        break;
      }
    });
  });
  bool marked = request.wait(std::chrono::seconds(30), [&] { return status != 0; });
  pid_t agent = agents_[index_of(target)]->pid();
  if (marked) kill(agent, SIGSTOP);
  std::this_thread::sleep_for(std::chrono::seconds(4));
  // Frozen before it saw writes: else this froze a primary, not a promoter.
  EXPECT_EQ(log_of(target).find("promoted; it accepts writes", log_from), std::string::npos)
      << "the agent saw its promotion through before the freeze";
  if (marked) kill(agent, SIGCONT);
  asking.join();
  ASSERT_TRUE(marked) << "no promotion started: " << status.load() << " " << answer;
  std::string leader;
  EXPECT_TRUE(eventually([&] {
    leader = primary();
    return !leader.empty() && all_stream_from(leader);
  })) << "no whole cluster after the thaw; see "
      << dir_;
  for (auto& probe : probes) probe->stop();
  // Acknowledged writes in the order they were answered: one writer per timeline, and the
  // timelines never go back. Two writers at once, each on its own timeline, would alternate.
  struct Ack {
    WallClock::time_point at;
    long timeline;
    std::string node;
  };
  std::vector<Ack> acks;
  for (std::size_t index = 0; index < probes.size(); ++index) {
    for (const WriteAttempt& attempt : probes[index]->attempts()) {
      if (attempt.acknowledged) {
        acks.push_back({attempt.answered_at, attempt.timeline, config_.nodes[index].name});
      }
    }
  }
  std::sort(acks.begin(), acks.end(), [](const Ack& a, const Ack& b) { return a.at < b.at; });
  std::string order;
  std::map<long, std::string> writer_of;
  long newest = 0;
  std::vector<std::string> broken;  // each acknowledged write that breaks the rule
  for (const Ack& ack : acks) {
    if (writer_of.emplace(ack.timeline, ack.node).second) {
      order +=
          fmt::format("{}{} (timeline {})", order.empty() ? "" : " -> ", ack.node, ack.timeline);
    }
    if (writer_of[ack.timeline] != ack.node || ack.timeline < newest) {
      broken.push_back(fmt::format("{} on timeline {} after a write on timeline {}", ack.node,
                                   ack.timeline, newest));
    }
    newest = std::max(newest, ack.timeline);
  }
  EXPECT_TRUE(broken.empty()) << broken.size() << " acknowledged writes by a second writer, the "
                              << "first: " << (broken.empty() ? "" : broken.front());
  // Every timeline that took a write is in the history, the frozen promoter's included (it
  // was missing when PostgreSQL promoted while its agent was frozen and was then fenced).
  SystemProcessRunner runner;
  Result<ProcessResult> history = fail(ErrorCode::kFailed, "not run");
  run_in_netns(network_->netns(0), [&] {  // etcd's hosts are reached from the nodes' network
    history = runner.run({.program = TANDEM_BINARY,
                          .args = {"-c", config_path_, "history", "--json"},
                          .timeout = std::chrono::seconds(30)});
  });
  ASSERT_TRUE(history && history->exit_code == 0)
      << (history ? history->output : history.error().message);
  std::set<long> recorded;
  auto entries = nlohmann::json::parse(history->output, nullptr, false);
  for (const auto& entry : entries) recorded.insert(entry.value("timeline", 0L));
  for (const auto& [timeline, writer] : writer_of) {
    EXPECT_TRUE(timeline == 1 || recorded.contains(timeline))
        << writer << " wrote on timeline " << timeline << ", which the history lacks:\n"
        << history->output;
  }
  std::cout << "switchover to " << target << " (its agent frozen 4 s mid-promotion, the request "
            << status.load() << "): writers in turn " << order << "; " << leader << " leads\n";
  EXPECT_GE(writer_of.size(), 2u) << "no write after the switchover";
}

// A primary and one standby on etcd, the walk-through's own shape (issue 12).
class TwoHostTest : public MultiHostTest {
 protected:
  TwoHostTest() : MultiHostTest(2) {}
};

// The standby's host cut off: a majority of two agents is gone, but the primary renews its lease
// in etcd and refuses no write; the standby, cut off from etcd too, cannot take over. Healed, it
// streams again and has every acknowledged write.
TEST_F(TwoHostTest, AStandbysHostCutOffRefusesNoWrite) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string leader = primary();
  std::string standby =
      config_.nodes[0].name == leader ? config_.nodes[1].name : config_.nodes[0].name;
  std::string timeline =
      query(leader, "SELECT timeline_id::text AS v FROM pg_control_checkpoint()");
  WriteProbe probe(node_conninfo(reach_, leader), milliseconds(20));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 10; }));
  auto cut_at = WallClock::now();
  ASSERT_TRUE(network_->cut(index_of(standby)));
  EXPECT_TRUE(stays_primary(leader, std::chrono::seconds(10)));
  std::cout << "the standby's host cut off for 10 s: " << refused(probe)
            << " writes refused, at most " << longest_gap(probe, cut_at).count() << " ms apart\n";
  EXPECT_EQ(refused(probe), 0u);
  EXPECT_LT(longest_gap(probe, cut_at), std::chrono::seconds(2));
  ASSERT_TRUE(network_->heal(index_of(standby)));
  EXPECT_TRUE(eventually([&] { return all_stream_from(leader); })) << "see " << dir_;
  EXPECT_TRUE(stays_primary(leader, std::chrono::seconds(3)));
  probe.stop();
  EXPECT_EQ(refused(probe), 0u);
  EXPECT_TRUE(eventually([&] {
    auto missing = probe.missing_on(node_conninfo(reach_, standby));
    return missing && missing->empty();
  })) << "acknowledged writes are missing on the standby";
  EXPECT_EQ(query(leader, "SELECT timeline_id::text AS v FROM pg_control_checkpoint()"), timeline)
      << "a needless new timeline";
}

// The primary's host cut off: it stops writing (neither lease nor majority), and only then the
// standby, once the lease stood still and the primary stayed silent for the proof's time,
// takes over. Healed, the old primary rejoins it.
TEST_F(TwoHostTest, APrimarysHostCutOffFailsOverToTheStandby) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string old_primary = primary();
  WriteProbe probe(node_conninfo(reach_, old_primary), milliseconds(10));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 20; }));
  auto cut_at = WallClock::now();
  ASSERT_TRUE(network_->cut(index_of(old_primary)));
  auto [new_primary, promoted_at] =
      await_takeover("two nodes, the primary's host cut off", old_primary, probe, cut_at);
  ASSERT_FALSE(new_primary.empty());
  auto stopped = probe.first_failure_after(cut_at);
  ASSERT_TRUE(stopped) << "the cut-off primary never refused a write";
  EXPECT_LT(stopped->at, promoted_at);
  // The line is written once the take-over's cycle ends, a little after the promotion.
  EXPECT_TRUE(
      eventually([&] { return log_of(new_primary).find("take-over: ") != std::string::npos; },
                 std::chrono::seconds(10)))
      << log_of(new_primary);
  ASSERT_TRUE(network_->heal(index_of(old_primary)));
  EXPECT_TRUE(eventually([&] { return all_stream_from(new_primary); }))
      << "see " << agent_log(old_primary);
  EXPECT_EQ(primary(), new_primary);
}

}  // namespace
}  // namespace tandem::testing
