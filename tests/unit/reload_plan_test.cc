// What an agent makes of tandem.yaml read again: applied at once, or kept until a restart.
#include "core/reload_plan.h"

#include <gtest/gtest.h>

#include <functional>

namespace tandem {
namespace {

ClusterConfig two_nodes() {
  ClusterConfig config;
  config.nodes = {{.name = "node1", .port = 5432, .data_dir = "/d/node1"},
                  {.name = "node2", .port = 5433, .data_dir = "/d/node2"}};
  return config;
}

TEST(ReloadPlan, AppliesWhatTheCycleReadsAndNamesTheRest) {
  struct Case {
    const char* what;
    std::function<void(ClusterConfig&)> change;
    std::optional<std::int64_t> lag;
    std::optional<bool> nofailover;
    std::vector<std::string> need_restart;
    const char* line;
  };
  std::vector<Case> cases = {
      {"nothing", [](ClusterConfig&) {}, {}, {}, {}, "nothing to apply at once"},
      {"the lag allowed on failover",
       [](ClusterConfig& c) { c.ha.maximum_lag_on_failover = 1 << 20; },
       1 << 20,
       {},
       {},
       "applied ha.maximum_lag_on_failover 16MB -> 1MB"},
      {"this node's nofailover",
       [](ClusterConfig& c) { c.nodes[0].nofailover = true; },
       {},
       true,
       {},
       "applied nofailover of node1 -> true"},
      {"another node's nofailover: its own agent's",
       [](ClusterConfig& c) { c.nodes[1].nofailover = true; },
       {},
       {},
       {},
       "nothing to apply at once"},
      {"the lease's timing",
       [](ClusterConfig& c) { c.ha.ttl = std::chrono::seconds(3); },
       {},
       {},
       {"ha.ttl"},
       "nothing to apply at once; changed but kept until the agent restarts: ha.ttl"},
      {"a node added: taken at once (the agent is built again, PostgreSQL runs on)",
       [](ClusterConfig& c) {
         c.nodes.push_back({.name = "node3", .port = 5434, .data_dir = "/d/3"});
       },
       {},
       {},
       {},
       "applied members +node3"},
      {"a node removed and another added",
       [](ClusterConfig& c) { c.nodes[1] = {.name = "node3", .port = 5434, .data_dir = "/d/3"}; },
       {},
       {},
       {},
       "applied members +node3 -node2"},
      {"a member moved: its restart",
       [](ClusterConfig& c) { c.nodes[1].port = 6000; },
       {},
       {},
       {"nodes"},
       "changed but kept until the agent restarts: nodes"},
      {"synchronous mode and the etcd endpoints",
       [](ClusterConfig& c) {
         c.ha.synchronous_mode = true;
         c.etcd.endpoints = {"http://10.0.0.1:2379"};
       },
       {},
       {},
       {"ha.synchronous_mode", "etcd"},
       "ha.synchronous_mode, etcd"},
      {"TLS between hosts: PostgreSQL's files are rendered from it",
       [](ClusterConfig& c) {
         c.tls = {.cert_file = "/s.crt", .key_file = "/s.key", .ca_file = "/ca"};
       },
       {},
       {},
       {"postgresql.tls"},
       "postgresql.tls"},
      {"the callbacks: the next one runs the new script",
       [](ClusterConfig& c) { c.callbacks.on_role_change = "/usr/local/bin/vip"; },
       {},
       {},
       {},
       "applied callbacks"},
      {"a path",
       [](ClusterConfig& c) { c.log_dir = "/elsewhere"; },
       {},
       {},
       {"other settings"},
       "other settings"},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    ClusterConfig running = two_nodes();
    ClusterConfig fresh = running;
    each.change(fresh);
    ReloadPlan plan = plan_reload(running, fresh, "node1");
    EXPECT_EQ(plan.maximum_lag_on_failover, each.lag);
    EXPECT_EQ(plan.nofailover, each.nofailover);
    EXPECT_EQ(plan.need_restart, each.need_restart);
    std::string line = describe_reload(plan, running, "node1");
    EXPECT_NE(line.find(each.line), std::string::npos) << line;
  }
}

// On several machines the agents count majorities over the member list: a change waits for
// their restart (core/member_change.h).
TEST(ReloadPlan, MembersChangeOnlyOnOneMachineAtOnce) {
  ClusterConfig running = two_nodes();
  running.etcd.endpoints = {"http://10.0.0.1:2379"};
  ClusterConfig fresh = running;
  fresh.nodes.push_back({.name = "node3", .port = 5434, .data_dir = "/d/3"});
  ReloadPlan plan = plan_reload(running, fresh, "node1");
  EXPECT_FALSE(plan.nodes.has_value());
  EXPECT_EQ(plan.need_restart, std::vector<std::string>{"nodes"});
  running.etcd = {};
  fresh.etcd = {};
  plan = plan_reload(running, fresh, "node1");
  ASSERT_TRUE(plan.nodes.has_value());
  EXPECT_EQ(plan.nodes->size(), 3u);
}

// Several machines, the members changed at run time: the store's list rules, the file's nodes
// (perhaps older) are not a change — but the file still speaks for its own node's nofailover.
TEST(ReloadPlan, WithAMemberListInTheStoreTheFileSpeaksOnlyForItsOwnNode) {
  ClusterConfig running = two_nodes();
  running.etcd.endpoints = {"http://10.0.0.1:2379"};
  running.nodes.push_back({.name = "node3", .port = 5434, .data_dir = "/d/3"});
  running.member_list = 2;
  ClusterConfig file = two_nodes();  // tandem.yaml from before node3 was added
  file.etcd = running.etcd;
  ReloadPlan plan = plan_reload(running, file, "node1");
  EXPECT_FALSE(plan.nodes.has_value());
  EXPECT_TRUE(plan.need_restart.empty()) << plan.need_restart.front();
  EXPECT_FALSE(plan.nofailover.has_value());
  file.nodes[0].nofailover = true;
  plan = plan_reload(running, file, "node1");
  ASSERT_TRUE(plan.nofailover.has_value());
  EXPECT_TRUE(*plan.nofailover);
  EXPECT_EQ(with_running_members(file, running).nodes.size(), 3u);
}

}  // namespace
}  // namespace tandem
