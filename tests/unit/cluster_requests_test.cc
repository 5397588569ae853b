// The checks of a switchover or failover request, shared by the CLI and the API: each refusal
// has its code (kConflict: the cluster refuses it, the API's 412) and its one line.
#include "ops/cluster_requests.h"

#include <gtest/gtest.h>

#include <optional>

#include "api/cluster_json.h"
#include "dcs/memory_store.h"
#include "fake_node_controller.h"

namespace tandem {
namespace {

// node1 leads (or nobody does); node2 and node3 are running standbys, node3 nofailover; node4
// has no live agent.
ClusterConfig three_and_a_stopped_node() {
  ClusterConfig config;
  config.name = "unit";
  for (int index = 1; index <= 4; ++index) {
    config.nodes.push_back({.name = "node" + std::to_string(index), .nofailover = index == 3});
  }
  return config;
}

ClusterView view_led_by(std::optional<std::string> leader) {
  ClusterView view;
  view.initialized = true;
  if (leader) view.leader = LeaderRecord{.name = *leader, .revision = 1};
  view.members["node1"] = {.name = "node1", .state = PgState::kPrimary, .timeline = 1};
  view.members["node2"] = {
      .name = "node2", .state = PgState::kStandby, .timeline = 1, .received_lsn = Lsn(900)};
  view.members["node3"] = {.name = "node3",
                           .state = PgState::kStandby,
                           .timeline = 1,
                           .received_lsn = Lsn(900),
                           .nofailover = true};
  return view;
}

TEST(ClusterRequests, SwitchoverAndFailoverChecks) {
  enum Kind { kSwitchover, kFailover };
  struct Case {
    const char* name;
    Kind kind;
    bool led;  // node1 holds the lease
    const char* expected_leader;
    const char* to;
    std::optional<ErrorCode> refused;  // nullopt: planned
    const char* says;                  // the refusal's message, whole; or the planned `from`
    bool pending = false;              // a failover from node1 to node2 is under way
    bool behind = false;               // node3 is on timeline 2, node2 on 1
  };
  const Case cases[] = {
      {"switchover to the best", kSwitchover, true, "", "", std::nullopt, "node1"},
      {"switchover, leader named", kSwitchover, true, "node1", "node2", std::nullopt, "node1"},
      {"switchover without a leader", kSwitchover, false, "", "node2", ErrorCode::kConflict,
       "nobody leads, so there is nothing to switch over: fail over to a node instead"},
      {"switchover, another leader named", kSwitchover, true, "node2", "", ErrorCode::kConflict,
       "node2 does not lead (node1 does)"},
      {"switchover to an unknown node", kSwitchover, true, "", "node9", ErrorCode::kNotFound,
       "unknown node 'node9': this cluster has node1, node2, node3, node4"},
      {"switchover to the leader", kSwitchover, true, "", "node1", ErrorCode::kConflict,
       "node1 already leads"},
      {"switchover to a nofailover node", kSwitchover, true, "", "node3", ErrorCode::kConflict,
       "node3 is tagged nofailover (a failover forces it)"},
      {"switchover to a node without agent", kSwitchover, true, "", "node4", ErrorCode::kConflict,
       "node4 is not a running standby with a live agent"},
      {"failover without a candidate", kFailover, true, "", "", ErrorCode::kInvalidArgument,
       "a failover needs a candidate: the node to promote"},
      {"failover with a leader", kFailover, true, "", "node2", std::nullopt, "node1"},
      {"failover, leader named", kFailover, true, "node1", "node2", std::nullopt, "node1"},
      {"failover without a leader", kFailover, false, "", "node2", std::nullopt, ""},
      {"failover forces nofailover", kFailover, true, "", "node3", std::nullopt, "node1"},
      {"failover, another leader named", kFailover, true, "node3", "node2", ErrorCode::kConflict,
       "node3 does not lead (node1 does)"},
      {"failover, a leader named, nobody leads", kFailover, false, "node1", "node2",
       ErrorCode::kConflict, "node1 does not lead (nobody does)"},
      {"failover to an unknown node", kFailover, true, "", "node9", ErrorCode::kNotFound,
       "unknown node 'node9': this cluster has node1, node2, node3, node4"},
      {"failover to the leader", kFailover, true, "", "node1", ErrorCode::kConflict,
       "node1 already leads"},
      {"failover to a node without agent", kFailover, false, "", "node4", ErrorCode::kConflict,
       "node4 is not a running standby with a live agent"},
      // The agents' own rule (request_refusal): what they would not carry out is refused here.
      {"switchover to a standby behind the newest timeline", kSwitchover, true, "", "node2",
       ErrorCode::kConflict,
       "node2 is on timeline 1, behind timeline 2 (only a failover may go there, with "
       "--allow-data-loss)",
       false, true},
      {"failover to a standby behind the newest timeline", kFailover, true, "", "node2",
       ErrorCode::kConflict,
       "node2 is on timeline 1, behind timeline 2 (allow it with --allow-data-loss)", false, true},
      // Told what is under way first, even when the target looks unfit meanwhile.
      {"failover while one is pending", kFailover, true, "", "node4", ErrorCode::kConflict,
       "a failover from node1 to node2 is already under way: wait for it to end (or to expire) "
       "and ask again",
       true},
      {"switchover while one is pending", kSwitchover, true, "", "node2", ErrorCode::kConflict,
       "a failover from node1 to node2 is already under way: wait for it to end (or to expire) "
       "and ask again",
       true},
  };
  ClusterConfig config = three_and_a_stopped_node();
  for (const Case& each : cases) {
    ClusterView view = view_led_by(each.led ? std::optional<std::string>("node1") : std::nullopt);
    if (each.pending)
      view.switchover = SwitchoverRequest{.from = "node1", .to = "node2", .force = true};
    if (each.behind) view.members["node3"].timeline = 2;
    auto planned = each.kind == kSwitchover
                       ? plan_switchover(view, config, each.expected_leader, each.to)
                       : plan_failover(view, config, each.expected_leader, each.to, false);
    if (each.refused) {
      ASSERT_FALSE(planned) << each.name;
      EXPECT_EQ(planned.error().code, *each.refused) << each.name;
      EXPECT_EQ(planned.error().message, each.says) << each.name;
      continue;
    }
    ASSERT_TRUE(planned) << each.name << ": " << planned.error().message;
    EXPECT_EQ(planned->from, each.says) << each.name;
    EXPECT_EQ(planned->to, each.to) << each.name;
    EXPECT_EQ(planned->force, each.kind == kFailover) << each.name;
    EXPECT_FALSE(planned->allow_data_loss) << each.name;
  }
}

TEST(ClusterRequests, AFailoverCarriesAllowDataLoss) {
  ClusterConfig config = three_and_a_stopped_node();
  auto planned = plan_failover(view_led_by(std::nullopt), config, "", "node2", true);
  ASSERT_TRUE(planned);
  EXPECT_TRUE(planned->allow_data_loss);
  EXPECT_TRUE(planned->force);
}

// Synchronous mode: only the synchronous standby (or the last leader) has every acknowledged
// commit. The CLI and the API refuse a request for another node as the agents would, and only
// --allow-data-loss lets a failover go there.
TEST(ClusterRequests, SynchronousModeRefusesWhatTheAgentsWouldRefuse) {
  ClusterConfig config = three_and_a_stopped_node();
  config.ha.synchronous_mode = true;
  ClusterView view = view_led_by("node1");
  view.sync_leader = "node1";
  view.sync_standbys = {"node3"};
  auto switchover = plan_switchover(view, config, "", "node2");
  ASSERT_FALSE(switchover);
  EXPECT_EQ(switchover.error().code, ErrorCode::kConflict);
  EXPECT_EQ(switchover.error().message,
            "node2 is neither the synchronous standby (node3) nor the last leader (node1) (only a "
            "failover may go there, with --allow-data-loss)");
  auto failover = plan_failover(view, config, "", "node2", false);
  ASSERT_FALSE(failover);
  EXPECT_EQ(failover.error().message,
            "node2 is neither the synchronous standby (node3) nor the last leader (node1) (allow "
            "it with --allow-data-loss)");
  EXPECT_TRUE(plan_failover(view, config, "", "node2", true));
  EXPECT_TRUE(plan_failover(view, config, "", "node3", false))
      << "nofailover: a failover forces it";
}

// Two requests at once (two API clients: the API takes no cluster lock) never overwrite each
// other: the second is refused with what is under way, and the first is left as it was. A
// request the agents do not carry out is withdrawn, and only it.
TEST(ClusterRequests, ASecondRequestWhileOneIsPendingIsRefused) {
  testing::FakeClock clock;
  MemoryStore store(clock);
  ClusterLayout layout("unit");
  SwitchoverRequest first{.from = "node1", .to = "node2", .force = true};
  ASSERT_TRUE(
      store.create(layout.switchover(), encode_switchover(first), std::chrono::seconds(35)));
  auto refused = carry_out(store, layout, {.from = "node1", .to = "node3", .force = true}, clock,
                           std::chrono::seconds(30));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_EQ(refused.error().message,
            "a failover from node1 to node2 is already under way: wait for it to end (or to "
            "expire) and ask again");
  auto snapshot = store.read(layout.prefix());
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(layout.view(*snapshot).switchover->to, "node2");

  ASSERT_TRUE(store.remove(layout.switchover(), std::nullopt));
  auto timed_out =
      carry_out(store, layout, {.from = "node1", .to = "node3"}, clock, std::chrono::seconds(1));
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error().code, ErrorCode::kTimeout);
  snapshot = store.read(layout.prefix());
  ASSERT_TRUE(snapshot);
  EXPECT_FALSE(layout.view(*snapshot).switchover) << "withdrawn";
}

// A switchover whose target took it up and then lost the lead (its promotion failed: its
// PostgreSQL stopped while its agent was frozen, issue 16.2) is reported failed at once, with
// who leads now, not after the whole wait as "not carried out".
TEST(ClusterRequests, ASwitchoverWhoseTargetFailedSaysWhoLeads) {
  // Its first wait is when the target takes the request up (and fails): node1 leads again.
  class TakingUpClock final : public Clock {
   public:
    std::chrono::system_clock::time_point wall_now() const override { return inner.wall_now(); }
    std::chrono::steady_clock::time_point steady_now() const override { return inner.steady_now(); }
    void sleep_for(std::chrono::milliseconds duration) override {
      inner.sleep_for(duration);
      if (store != nullptr && !taken) {
        taken = true;
        ASSERT_TRUE(store->remove(ClusterLayout("unit").switchover(), std::nullopt));
      }
    }
    testing::FakeClock inner;
    Store* store = nullptr;
    bool taken = false;
  };
  TakingUpClock clock;
  MemoryStore store(clock);
  clock.store = &store;
  ClusterLayout layout("unit");
  ASSERT_TRUE(store.put(layout.leader(), "node1", std::chrono::seconds(10)));
  ASSERT_TRUE(store.put(layout.member("node1"),
                        encode_member({.name = "node1", .state = PgState::kPrimary, .timeline = 3}),
                        std::chrono::seconds(10)));
  auto outcome =
      carry_out(store, layout, {.from = "node1", .to = "node2"}, clock, std::chrono::seconds(30));
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().code, ErrorCode::kFailed);
  EXPECT_EQ(outcome.error().message,
            "node2 did not become the primary (it took the request up and its promotion failed, "
            "or it was refused: see the agents' logs); node1 leads now");
  EXPECT_LT(clock.steady_now().time_since_epoch(), std::chrono::seconds(1)) << "not at once";
}

// The view of a store whose `sync` record is `value`.
ClusterView view_with_sync(MemoryStore& store, const ClusterLayout& layout,
                           const std::string& value) {
  EXPECT_TRUE(store.put(layout.sync(), value, std::nullopt));
  auto snapshot = store.read(layout.prefix());
  EXPECT_TRUE(snapshot);
  return snapshot ? layout.view(*snapshot) : ClusterView{};
}

// Quorum commit's record: "any k of" reads back with its k; an agent that knows no quorum reads
// it as naming nobody (its "standby" is empty); and a quorum out of range names nobody, never
// every member (review: it read as the priority form, the most permissive).
TEST(SyncRecord, AQuorumReadsBackWithItsCountAndOutOfRangeNamesNobody) {
  testing::FakeClock clock;
  MemoryStore store(clock);
  ClusterLayout layout("unit");
  using Names = std::vector<std::string>;
  struct Case {
    std::string value;
    Names expected;
    std::optional<int> quorum;
  };
  std::vector<Case> cases = {
      {encode_sync("node1", {"node2", "node3"}, 1), {"node2", "node3"}, 1},
      {encode_sync("node1", {"node2", "node3"}, 2), {"node2", "node3"}, std::nullopt},
      {R"({"leader": "node1", "standby": "", "quorum": 0, "quorum_standbys": ["a", "b"]})",
       {},
       std::nullopt},
      {R"({"leader": "node1", "standby": "", "quorum": 3, "quorum_standbys": ["a", "b"]})",
       {},
       std::nullopt},
      {R"({"leader": "node1", "standby": "", "quorum": "1", "quorum_standbys": ["a", "b"]})",
       {},
       std::nullopt},
      {R"({"leader": "node1", "standby": "", "quorum_standbys": ["a", "b"]})", {}, std::nullopt},
      {R"({"leader": "node1", "standby": "", "quorum": 2, "quorum_standbys": ["a", "b"]})",
       {"a", "b"},
       std::nullopt},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.value);
    ClusterView view = view_with_sync(store, layout, each.value);
    ASSERT_TRUE(view.sync_standbys);
    EXPECT_EQ(*view.sync_standbys, each.expected);
    EXPECT_EQ(view.sync_quorum, each.quorum);
  }
  auto old = nlohmann::json::parse(encode_sync("node1", {"node2", "node3"}, 1));
  EXPECT_EQ(old["standby"], "");
  EXPECT_FALSE(old.contains("standbys"));
}

// The `sync` record names a set (ha.synchronous_node_count): it reads back as written, and a
// record an agent of before wrote (its one `standby`) reads as that one name. `/cluster` gives
// the set, its first as `sync_standby`, and each member of it the role sync_standby.
TEST(SyncRecord, ReadsBackAsWrittenAndAsAnAgentOfBeforeWroteIt) {
  testing::FakeClock clock;
  MemoryStore store(clock);
  ClusterLayout layout("unit");
  using Names = std::vector<std::string>;
  struct Case {
    std::string value;
    Names expected;
  };
  std::vector<Case> cases = {
      {encode_sync("node1", {}), {}},
      {encode_sync("node1", {"node2"}), {"node2"}},
      {encode_sync("node1", {"node3", "node2"}), {"node3", "node2"}},
      {R"({"leader": "node1", "standby": "node2"})", {"node2"}},
      {R"({"leader": "node1", "standby": ""})", {}},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.value);
    ClusterView view = view_with_sync(store, layout, each.value);
    ASSERT_TRUE(view.sync_standbys);
    EXPECT_EQ(*view.sync_standbys, each.expected);
    EXPECT_EQ(view.sync_leader, "node1");
    EXPECT_EQ(view.sync_names_any(), !each.expected.empty());
    for (const std::string& name : each.expected) EXPECT_TRUE(view.sync_names(name));
    EXPECT_FALSE(view.sync_names("node1"));
  }
  // As an agent of before reads it: "standby" is the first of them.
  auto old = nlohmann::json::parse(encode_sync("node1", {"node3", "node2"}));
  EXPECT_EQ(old["standby"], "node3");

  ClusterConfig config;
  for (const char* name : {"node1", "node2", "node3"}) {
    config.nodes.push_back({.name = name, .port = 5432, .data_dir = std::string("/d/") + name});
  }
  ClusterView view;
  view.leader = LeaderRecord{.name = "node1", .revision = 1};
  view.sync_leader = "node1";
  view.sync_standbys = Names{"node3", "node2"};
  for (const char* name : {"node2", "node3"}) {
    view.members[name] = {.name = name, .state = PgState::kStandby};
  }
  auto document = cluster_json(config, view);
  EXPECT_EQ(document["sync_standby"], "node3") << document.dump();
  EXPECT_EQ(document["sync_standbys"], nlohmann::json(Names{"node3", "node2"}));
  int named = 0;
  for (const auto& member : document["members"]) {
    if (member["name"] == "node1") continue;
    EXPECT_EQ(member["role"], "sync_standby") << member.dump();
    ++named;
  }
  EXPECT_EQ(named, 2) << document.dump();
}

// A member whose fencing watchdog does not run says so in its record (written and read back),
// and only then: older records, without the field, read as watched.
TEST(MemberRecords, SayWhenTheirWatchdogDoesNotRun) {
  MemberRecord unwatched{.name = "node2", .state = PgState::kStandby, .unwatched = true};
  auto decoded = decode_member(encode_member(unwatched));
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(decoded->unwatched);
  EXPECT_EQ(*decoded, unwatched);
  MemberRecord watched{.name = "node2", .state = PgState::kStandby};
  EXPECT_EQ(encode_member(watched).find("unwatched"), std::string::npos);
  decoded = decode_member(encode_member(watched));
  ASSERT_TRUE(decoded);
  EXPECT_FALSE(decoded->unwatched);
}

}  // namespace
}  // namespace tandem
