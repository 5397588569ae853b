// Members at run time: what one change makes of the config, and what is refused.
#include "core/member_change.h"

#include <gtest/gtest.h>

#include <functional>
#include <optional>

#include "dcs/cluster_layout.h"

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
      {"several machines, an address pg_hba.conf allows",
       [](ClusterConfig& c) {
         c.etcd.endpoints = {"http://10.0.0.1:2379"};
         c.replication.networks = {"10.0.0.0/24"};
         for (NodeConfig& node : c.nodes) node.api_port = 8008 + node.port;
       },
       {.name = "node4", .host = "10.0.0.14", .port = 5435, .data_dir = "/c/4", .api_port = 9000},
       ""},
      {"several machines, an address outside replication.networks",
       [](ClusterConfig& c) {
         c.etcd.endpoints = {"http://10.0.0.1:2379"};
         c.replication.networks = {"10.0.0.11/32", "10.0.0.12/32", "10.0.0.13/32"};
         for (NodeConfig& node : c.nodes) node.api_port = 8008 + node.port;
       },
       {.name = "node4", .host = "10.0.0.14", .port = 5435, .data_dir = "/c/4", .api_port = 9000},
       "10.0.0.14 is outside replication.networks"},
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

TEST(MemberChange, RemovesOneNodeButNeverOneThatAloneMayLead) {
  struct Case {
    const char* what;
    std::string name;
    std::string leader;
    std::optional<std::pair<std::string, std::string>> sync;  // the record: leader, standby
    bool several_machines;
    int nodes;
    const char* error;
  };
  std::vector<Case> cases = {
      {"a standby", "node3", "node1", {}, false, 3, ""},
      {"the leader", "node1", "node1", {}, false, 3, "node1 leads the cluster: switch over"},
      {"an unknown node", "node9", "node1", {}, false, 3, "node9"},
      {"a standby while nobody leads", "node2", "", {}, false, 3, ""},
      {"the synchronous standby",
       "node2",
       "node1",
       {{"node1", "node2"}},
       false,
       3,
       "node2 is a synchronous standby"},
      {"another standby in synchronous mode", "node3", "node1", {{"node1", "node2"}}, false, 3, ""},
      {"the last synchronous leader while nobody leads",
       "node1",
       "",
       {{"node1", ""}},
       true,
       3,
       "node1 led last in synchronous mode"},
      {"a standby of two on several machines", "node2", "node1", {}, true, 2, "one of two"},
      {"a standby of two on one machine", "node2", "node1", {}, false, 2, ""},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    ClusterConfig config = three_nodes();
    config.nodes.resize(each.nodes);
    if (each.several_machines) config.etcd.endpoints = {"http://10.0.0.1:2379"};
    ClusterView view;
    if (!each.leader.empty()) view.leader = LeaderRecord{.name = each.leader, .revision = 1};
    if (each.sync) {
      view.sync_revision = 5;
      view.sync_leader = each.sync->first;
      view.sync_standbys = {each.sync->second};
    }
    auto shrunk = plan_member_remove(config, each.name, view);
    if (std::string(each.error).empty()) {
      ASSERT_TRUE(shrunk) << shrunk.error().message;
      EXPECT_EQ(shrunk->nodes.size(), config.nodes.size() - 1);
      EXPECT_EQ(shrunk->find_node(each.name), nullptr);
    } else {
      ASSERT_FALSE(shrunk);
      EXPECT_NE(shrunk.error().message.find(each.error), std::string::npos)
          << shrunk.error().message;
    }
  }
}

// While `tandem adopt --node` runs (the store's adopting mark), no member comes or goes.
TEST(MemberChange, NothingChangesWhileAnAdoptionRuns) {
  ClusterConfig config = three_nodes();
  config.etcd.endpoints = {"http://10.0.0.1:2379"};
  ClusterView view;
  view.leader = LeaderRecord{.name = "node1", .revision = 1};
  EXPECT_TRUE(no_adoption_under_way(view));
  EXPECT_TRUE(plan_member_remove(config, "node3", view));
  view.adopting = "node1";
  auto refused = no_adoption_under_way(view);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("node1 is being adopted"), std::string::npos);
  auto shrunk = plan_member_remove(config, "node3", view);
  ASSERT_FALSE(shrunk);
  EXPECT_NE(shrunk.error().message.find("once its adoption ends"), std::string::npos);
}

// A running agent takes the next list when one member came or went and the others stayed as
// they were; a list further on, as a restart would; nothing else.
TEST(MemberChange, AnAgentTakesTheNextListOrOneFurtherOnButNotAnother) {
  ClusterConfig running = three_nodes();
  running.member_list = 4;
  auto list_of = [&](std::uint64_t version, std::function<void(std::vector<NodeConfig>&)> edit) {
    MemberList list{.version = version, .nodes = running.nodes};
    edit(list.nodes);
    return list;
  };
  struct Case {
    const char* what;
    MemberList list;
    const char* error;
  };
  std::vector<Case> cases = {
      {"one added",
       list_of(5, [](auto& n) { n.push_back({.name = "node4", .port = 5435, .data_dir = "/4"}); }),
       ""},
      {"one removed", list_of(5, [](auto& n) { n.pop_back(); }), ""},
      {"the same version", list_of(4, [](auto& n) { n.pop_back(); }), "does not follow list 4"},
      {"an older version", list_of(3, [](auto& n) { n.pop_back(); }), "does not follow list 4"},
      {"two removed", list_of(5, [](auto& n) { n.resize(1); }), "more than one member"},
      {"one replaced",
       list_of(5, [](auto& n) { n.back() = {.name = "node9", .port = 5439, .data_dir = "/9"}; }),
       "more than one member"},
      {"a staying member moved", list_of(5, [](auto& n) { n[1].port = 6000; }), "moves node2"},
      {"two versions on, anything (a restart's view)", list_of(6, [](auto& n) { n.resize(2); }),
       ""},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    Status ok = takes_member_list(running, each.list);
    if (std::string(each.error).empty()) {
      EXPECT_TRUE(ok) << ok.error().message;
    } else {
      ASSERT_FALSE(ok);
      EXPECT_NE(ok.error().message.find(each.error), std::string::npos) << ok.error().message;
    }
  }
  // Each host's tandem.yaml speaks for its own node's nofailover.
  running.nodes[0].nofailover = true;
  MemberList list{.version = 5, .nodes = three_nodes().nodes, .previous = {"node1", "node2"}};
  ClusterConfig taken = with_member_list(running, list);
  EXPECT_TRUE(taken.nodes[0].nofailover);
  EXPECT_EQ(taken.member_list, 5u);
  EXPECT_EQ(taken.previous_members, list.previous);
}

// The change is over for counting once every member of the list before but one has moved on
// (or said it left): that one alone has nobody on its list to back it.
TEST(MemberChange, AChangeIsOverWhenAtMostOneOfThePreviousListIsBehind) {
  ClusterConfig running = three_nodes();
  running.member_list = 5;
  running.previous_members = {"node1", "node2", "node3", "node4"};
  MemberListAck on5{.version = 5}, on4{.version = 4}, on6{.version = 6};
  struct Case {
    const char* what;
    std::map<std::string, MemberListAck> acks;
    bool over;
  };
  std::vector<Case> cases = {
      {"all on 5", {{"node1", on5}, {"node2", on5}, {"node3", on5}, {"node4", on5}}, true},
      {"node4 left (removed, said so), one behind",
       {{"node1", on4}, {"node2", on5}, {"node3", on5}, {"node4", on5}},
       true},
      {"one silent", {{"node1", on5}, {"node2", on5}, {"node3", on5}}, true},
      {"two behind", {{"node1", on4}, {"node2", on4}, {"node3", on5}, {"node4", on5}}, false},
      {"one behind, one silent", {{"node1", on4}, {"node2", on5}, {"node3", on5}}, false},
      {"ahead counts as moved on", {{"node1", on6}, {"node2", on6}, {"node3", on5}}, true},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    EXPECT_EQ(previous_list_left(running, each.acks), each.over);
  }
}

// Several machines: a change is written only when every agent runs the current list (names and
// version), so that no agent ever counts over a list two changes old.
TEST(MemberChange, ANewListWaitsForEveryAgentToRunTheCurrentOne) {
  ClusterConfig running = three_nodes();
  running.member_list = 4;
  MemberListAck current{.version = 4, .names = {"node1", "node2", "node3"}};
  struct Case {
    const char* what;
    std::map<std::string, MemberListAck> acks;
    std::string except;
    const char* error;  // "" when it may be written
  };
  std::vector<Case> cases = {
      {"every agent runs list 4",
       {{"node1", current}, {"node2", current}, {"node3", current}},
       "",
       ""},
      {"node3 still runs list 3",
       {{"node1", current},
        {"node2", current},
        {"node3", {.version = 3, .names = {"node1", "node2"}}}},
       "",
       "node3's agent runs member list 3 (node1, node2), not the current 4"},
      {"node3 never said",
       {{"node1", current}, {"node2", current}},
       "",
       "node3's agent has not reported"},
      {"node3, behind, is the one removed",
       {{"node1", current},
        {"node2", current},
        {"node3", {.version = 3, .names = {"node1", "node2"}}}},
       "node3",
       ""},
      {"node2 runs list 4 with other names (its tandem.yaml differs)",
       {{"node1", current},
        {"node2", {.version = 4, .names = {"node1", "node2"}}},
        {"node3", current}},
       "",
       "node2's agent runs member list 4 (node1, node2)"},
      {"an agent ahead of the list (an unfinished write) is not the list either",
       {{"node1", current},
        {"node2", {.version = 5, .names = {"node1", "node2", "node3", "node4"}}},
        {"node3", current}},
       "",
       "node2's agent runs member list 5"},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    Status ok = every_agent_took(running, each.acks, each.except);
    if (std::string(each.error).empty()) {
      EXPECT_TRUE(ok) << ok.error().message;
    } else {
      ASSERT_FALSE(ok);
      EXPECT_NE(ok.error().message.find(each.error), std::string::npos) << ok.error().message;
    }
  }
}

// The list in the store and each agent's word, as written and read back; the view takes the
// list with the revision a change compares with.
TEST(MemberChange, TheStoresListAndAcksReadBackAsWritten) {
  MemberList list{.version = 7, .nodes = three_nodes().nodes};
  list.nodes[1].host = "10.0.0.12";
  list.nodes[1].listen = "*";
  list.nodes[2].nofailover = true;
  list.nodes[2].api_port = 8008;
  auto decoded = decode_member_list(encode_member_list(list));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->version, 7u);
  ASSERT_EQ(decoded->nodes.size(), 3u);
  for (std::size_t index = 0; index < 3; ++index) {
    EXPECT_EQ(render_config(ClusterConfig{.nodes = {decoded->nodes[index]}}),
              render_config(ClusterConfig{.nodes = {list.nodes[index]}}));
  }
  for (const char* bad :
       {"", "[]", R"({"version": -1, "nodes": []})", R"({"version": 2})",
        R"({"version": 2, "nodes": []})", R"({"version": 2, "nodes": [{"name": "n"}]})"}) {
    EXPECT_FALSE(decode_member_list(bad)) << bad;
  }
  MemberListAck ack{.version = 7, .names = {"node1", "node2"}};
  auto back = decode_list_ack(encode_list_ack(ack));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->version, 7u);
  EXPECT_EQ(back->names, ack.names);

  ClusterLayout layout("c");
  StoreSnapshot snapshot;
  snapshot.entries[layout.member_list()] = {encode_member_list(list), 42, 40};
  snapshot.entries[layout.list_ack("node1")] = {encode_list_ack(ack), 43, 43};
  snapshot.entries[layout.list_ack("node2")] = {"not json", 44, 44};
  ClusterView view = layout.view(snapshot);
  ASSERT_TRUE(view.member_list);
  EXPECT_EQ(view.member_list->version, 7u);
  EXPECT_EQ(view.member_list_revision, 42);
  auto acks = layout.list_acks(snapshot);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks["node1"].version, 7u);
  EXPECT_EQ(ack_of(ClusterConfig{.nodes = list.nodes, .member_list = 7}).names,
            (std::vector<std::string>{"node1", "node2", "node3"}));
}

TEST(MemberChange, NetworksContainAddresses) {
  struct Case {
    const char* network;
    const char* address;
    bool contains;
  };
  const Case cases[] = {
      {"10.0.0.0/24", "10.0.0.14", true},       {"10.0.0.0/24", "10.0.1.14", false},
      {"10.0.0.11/32", "10.0.0.11", true},      {"10.0.0.11/32", "10.0.0.12", false},
      {"0.0.0.0/0", "192.168.1.1", true},       {"10.213.5.0/25", "10.213.5.127", true},
      {"10.213.5.0/25", "10.213.5.128", false}, {"fd00::/8", "fd12::1", true},
      {"fd00::/8", "fe80::1", false},           {"10.0.0.0/24", "fd12::1", false},
      {"10.0.0.0/33", "10.0.0.1", false},       {"not a network", "10.0.0.1", false},
  };
  for (const Case& each : cases) {
    EXPECT_EQ(network_contains(each.network, each.address), each.contains)
        << each.network << " " << each.address;
  }
}

}  // namespace
}  // namespace tandem
