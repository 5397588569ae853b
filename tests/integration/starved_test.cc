// The host crash, the switchover and a full stop and start of a synchronous cluster while its
// machine is starved: busy loops on every core, and the agents and PostgreSQL frozen 300 ms out
// of every 400 (bench/starver.h). Slower, yes — but one promotion per event, no timeline used
// twice, no acknowledged write lost, and every node streaming again afterwards.
#include <nlohmann/json.hpp>
#include <set>

#include "bench/local_queries.h"
#include "bench/starver.h"
#include "bench/write_probe.h"
#include "local_cluster_fixture.h"
#include "proc/os_user.h"

namespace tandem::testing {
namespace {

using bench::WriteProbe;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

class StarvedTest : public LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    write_config(
        2, [](ClusterConfig& config) { config.ha.synchronous_mode = true; },
        /*agents=*/true);
    tandem_ok({"local", "up", "--dir", dir_});
    primary_ = bench::writable_node(config_);
    ASSERT_FALSE(primary_.empty());
    // Synchronous for real before the event: a standby is named in the store.
    ASSERT_TRUE(eventually([&] { return history().size() == 1 && !sync_standby().empty(); }));
  }
  std::string sync_standby() {
    return value(primary_,
                 "SELECT application_name AS v FROM pg_stat_replication WHERE "
                 "sync_state = 'sync'");
  }
  nlohmann::json history() {
    return nlohmann::json::parse(tandem_ok({"history", "--json"}), nullptr, false);
  }
  std::string log_of(const std::string& name) {
    return read_file(config_.log_dir + "/" + name + ".agent.log").value_or("");
  }
  // Runs `event` on a starved machine, keeps it starved until another primary writes (or 60 s),
  // then lets it breathe, starts whatever is down, and checks the outcome.
  // `new_leader`: the event must move the lead, by exactly one promotion; otherwise at most one.
  void survive(const std::string& what, bool new_leader, const std::function<void()>& event) {
    WriteProbe probe(bench::any_primary_conninfo(config_), milliseconds(20));
    probe.start();
    ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 20; }));
    auto began = Steady::now();
    std::string leader;
    {
      bench::Starver starver(config_);
      event();
      eventually(
          [&] {
            leader = bench::writable_node(config_);
            return !leader.empty() && (!new_leader || leader != primary_);
          },
          std::chrono::seconds(60));
    }
    tandem_ok({"local", "start"});
    ASSERT_TRUE(eventually(
        [&] {
          leader = bench::writable_node(config_);
          if (leader.empty()) return false;
          for (const NodeConfig& node : config_.nodes) {
            if (node.name != leader && !bench::streams(config_, leader, node.name)) return false;
          }
          return true;
        },
        std::chrono::seconds(90)))
        << log_of("node1") << log_of("node2") << log_of("node3");
    auto took = Steady::now() - began;
    auto after = std::chrono::system_clock::now();
    ASSERT_TRUE(eventually([&] { return probe.first_success_after(after).has_value(); }));
    probe.stop();
    auto missing = probe.missing_on(bench::node_conninfo(config_, leader));
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->size(), 0u) << "acknowledged writes lost in synchronous mode";
    nlohmann::json entries = history();
    ASSERT_TRUE(entries.is_array());
    if (new_leader) {
      EXPECT_EQ(entries.size(), 2u) << entries.dump(2);
    } else {
      EXPECT_LE(entries.size(), 2u) << entries.dump(2);
    }
    std::set<long> timelines;
    for (const auto& entry : entries) {
      EXPECT_TRUE(timelines.insert(entry["timeline"].get<long>()).second)
          << "timeline used twice: " << entries.dump(2);
    }
    std::cout << what << " on a starved machine: every node streams from " << leader << " "
              << std::chrono::duration_cast<milliseconds>(took).count() << " ms after, "
              << probe.acknowledged().size() << " acknowledged writes, 0 lost, "
              << entries.size() - 1 << " promotion(s)\n";
  }
  std::string primary_;
};

TEST_F(StarvedTest, HostCrash) {
  survive("host crash", true, [&] { tandem_ok({"local", "crash", primary_}); });
}

TEST_F(StarvedTest, Switchover) {
  survive("switchover", true, [&] { tandem_ok({"switchover"}); });
}

TEST_F(StarvedTest, FullStopAndStart) {
  // The standbys stop first, so the leader stops last with nobody to hand over to; started
  // again, it takes the lease back and restarts in place (nobody promoted since it did), or its
  // synchronous standby wins the election: no more than one promotion either way.
  survive("full stop and start", false, [&] {
    tandem_ok({"local", "down"});
    tandem_ok({"local", "up", "--dir", dir_});
  });
}

}  // namespace
}  // namespace tandem::testing
