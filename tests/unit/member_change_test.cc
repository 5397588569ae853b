// Members at run time: what one change makes of the config, and what is refused.
#include "core/member_change.h"

#include <gtest/gtest.h>

#include <functional>

namespace tandem {
namespace {

ClusterConfig three_nodes() {
  ClusterConfig config;
  config.socket_dir = "/c/run";
  config.log_dir = "/c/log";
  config.password_file = "/c/pgpass";
  config.state_file = "/c/state";
  config.store_file = "/c/store";
  config.nodes = {{.name = "node1", .port = 5432, .data_dir = "/c/node1"},
                  {.name = "node2", .port = 5433, .data_dir = "/c/node2"},
                  {.name = "node3", .port = 5434, .data_dir = "/c/node3"}};
  return config;
}

TEST(MemberChange, AddsOneNodeOrSaysWhyNot) {
  struct Case {
    const char* what;
    std::function<void(ClusterConfig&)> cluster;
    NodeConfig node;
    const char* error;  // "" when added
  };
  std::vector<Case> cases = {
      {"a fourth node",
       [](ClusterConfig&) {},
       {.name = "node4", .port = 5435, .data_dir = "/c/4"},
       ""},
      {"a name in use",
       [](ClusterConfig&) {},
       {.name = "node2", .port = 5435, .data_dir = "/c/4"},
       "a node named node2 is already a member"},
      {"a port in use",
       [](ClusterConfig&) {},
       {.name = "node4", .port = 5433, .data_dir = "/c/4"},
       "node4 cannot be added"},
      {"a data directory inside another's",
       [](ClusterConfig&) {},
       {.name = "node4", .port = 5435, .data_dir = "/c/node1/sub"},
       "node4 cannot be added"},
      {"a name that cannot name a slot",
       [](ClusterConfig&) {},
       {.name = "Node-4", .port = 5435, .data_dir = "/c/4"},
       "it names a replication slot"},
      {"too few WAL senders for one more, and PostgreSQL takes more only at a restart",
       [](ClusterConfig& c) { c.replication.max_wal_senders = 4; },
       {.name = "node4", .port = 5435, .data_dir = "/c/4"},
       "max_wal_senders is 4, too few for 4 nodes"},
      {"a cluster of one node",
       [](ClusterConfig& c) { c.nodes.resize(1); },
       {.name = "node4", .port = 5435, .data_dir = "/c/4"},
       "runs without a watchdog"},
      {"several machines",
       [](ClusterConfig& c) {
         c.etcd.endpoints = {"http://10.0.0.1:2379"};
         for (NodeConfig& node : c.nodes) node.api_port = 8008 + node.port;
       },
       {.name = "node4", .port = 5435, .data_dir = "/c/4", .api_port = 9000},
       "several machines"},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    ClusterConfig config = three_nodes();
    each.cluster(config);
    auto grown = plan_member_add(config, each.node);
    if (std::string(each.error).empty()) {
      ASSERT_TRUE(grown) << grown.error().message;
      ASSERT_EQ(grown->nodes.size(), config.nodes.size() + 1);
      EXPECT_EQ(grown->nodes.back().name, each.node.name);
      EXPECT_EQ(grown->replication.max_wal_senders, config.replication.max_wal_senders);
    } else {
      ASSERT_FALSE(grown);
      EXPECT_NE(grown.error().message.find(each.error), std::string::npos) << grown.error().message;
    }
  }
}

TEST(MemberChange, RemovesOneNodeButNeverTheLeader) {
  struct Case {
    const char* what;
    std::string name;
    std::string leader;
    const char* error;
  };
  std::vector<Case> cases = {
      {"a standby", "node3", "node1", ""},
      {"the leader", "node1", "node1", "node1 leads the cluster: switch over"},
      {"an unknown node", "node9", "node1", "node9"},
      {"a standby while nobody leads", "node2", "", ""},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    ClusterConfig config = three_nodes();
    auto shrunk = plan_member_remove(config, each.name, each.leader);
    if (std::string(each.error).empty()) {
      ASSERT_TRUE(shrunk) << shrunk.error().message;
      EXPECT_EQ(shrunk->nodes.size(), 2u);
      EXPECT_EQ(shrunk->find_node(each.name), nullptr);
    } else {
      ASSERT_FALSE(shrunk);
      EXPECT_NE(shrunk.error().message.find(each.error), std::string::npos)
          << shrunk.error().message;
    }
  }
}

}  // namespace
}  // namespace tandem
