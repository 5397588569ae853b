// The agents' HTTP API against real PostgreSQL: health checks and requests on live nodes,
// HAProxy routing through the example configuration across a failover, and the dashboard in
// headless Chromium. Timings are printed, never asserted.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "../support/child_process.h"
#include "../support/headless_browser.h"
#include "../support/prometheus_text.h"
#include "bench/local_queries.h"
#include "bench/write_probe.h"
#include "common/clock.h"
#include "dcs/cluster_layout.h"
#include "dcs/sqlite_store.h"
#include "local_cluster_fixture.h"
#include "proc/os_user.h"
#include "proc/ports.h"

namespace tandem::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

class ApiClusterTest : public LocalClusterTest {
 protected:
  void up() {
    write_config(2, {}, /*agents=*/true);
    tandem_ok({"local", "up", "--dir", dir_});
    token_ = read_file(config_.api.token_file).value_or("");
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
    ASSERT_FALSE(token_.empty());
  }

  httplib::Client client(const std::string& name) {
    httplib::Client client("127.0.0.1", node(name).api_port);
    client.set_read_timeout(std::chrono::seconds(60));
    return client;
  }
  int get(const std::string& name, const std::string& path) {
    auto reply = client(name).Get(path);
    return reply ? reply->status : -1;
  }
  json get_json(const std::string& name, const std::string& path) {
    auto reply = client(name).Get(path);
    if (!reply) return json();
    return json::parse(reply->body, nullptr, false);
  }
  httplib::Result post(const std::string& name, const std::string& path,
                       const std::string& body = "{}") {
    return client(name).Post(path, {{"Authorization", "Bearer " + token_}}, body,
                             "application/json");
  }
  std::string primary() { return bench::writable_node(config_); }
  bool streams(const std::string& standby) {
    return value(primary(),
                 "SELECT count(*)::text AS v FROM pg_stat_replication WHERE state = 'streaming' "
                 "AND application_name = '" +
                     standby + "'") == "1";
  }
  std::string role_in_cluster(const std::string& name, const std::string& member) {
    json cluster = get_json(name, "/cluster");
    if (!cluster.is_object()) return "";
    for (const json& entry : cluster["members"]) {
      if (entry["name"] == member) return entry["role"];
    }
    return "";
  }
  // The timeline `member` published, as `name`'s agent sees it (-1: not there).
  long timeline_in_cluster(const std::string& name, const std::string& member) {
    json cluster = get_json(name, "/cluster");
    if (!cluster.is_object()) return -1;
    for (const json& entry : cluster["members"]) {
      if (entry["name"] == member && entry["timeline"].is_number()) return entry["timeline"];
    }
    return -1;
  }

  std::string token_;
};

TEST_F(ApiClusterTest, HealthChecksFollowTheRoles) {
  up();
  ASSERT_EQ(primary(), "node1");
  ASSERT_TRUE(eventually([&] { return get("node2", "/replica") == 200; }));
  ASSERT_TRUE(eventually([&] { return get("node3", "/replica") == 200; }));
  std::map<std::string, std::map<std::string, int>> expected = {
      {"node1",
       {{"/primary", 200},
        {"/read-write", 200},
        {"/replica", 503},
        {"/read-only", 200},
        {"/health", 200},
        {"/liveness", 200},
        {"/readiness", 200}}},
      {"node2",
       {{"/primary", 503},
        {"/read-write", 503},
        {"/replica", 200},
        {"/read-only", 200},
        {"/health", 200},
        {"/replica?lag=16MB", 200},
        {"/replica?lag=10s", 200},
        {"/replica?lag=sideways", 400}}},
  };
  for (const auto& [name, checks] : expected) {
    for (const auto& [path, status] : checks) {
      EXPECT_EQ(get(name, path), status) << name << path;
    }
  }
  EXPECT_TRUE(eventually([&] { return get("node2", "/replica?lag=10s") == 200; }));
  // A standby far behind fails a tight lag limit: writes while its replay is paused.
  exec("node3", "SELECT pg_wal_replay_pause()");
  exec("node1", "CREATE TABLE filler AS SELECT generate_series(1, 100000) AS n");
  EXPECT_TRUE(eventually([&] { return get("node3", "/replica?lag=1MB") == 503; }));
  EXPECT_EQ(get("node3", "/replica"), 200);  // still streaming: fine without a limit
  exec("node3", "SELECT pg_wal_replay_resume()");
  EXPECT_TRUE(eventually([&] { return get("node3", "/replica?lag=1MB") == 200; }));

  // /cluster from any node: the same leader, slots of the primary with their retained WAL.
  EXPECT_TRUE(eventually([&] {
    json cluster = get_json("node3", "/cluster");
    return cluster.is_object() && cluster["leader"] == "node1" && cluster["slots"].size() == 2 &&
           cluster["members"].size() == 3 && cluster["members"][1]["role"] == "replica";
  }));
  auto metrics = client("node1").Get("/metrics");
  ASSERT_TRUE(metrics);
  auto parsed = parse_prometheus_text(metrics->body);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(naming_violations(*parsed, "tandem_"), std::vector<std::string>{});
  EXPECT_EQ(parsed->value("tandem_leader"), 1);
  EXPECT_EQ(parsed->value("tandem_postgres_state", {{"state", "primary"}}), 1);
  EXPECT_TRUE(
      parsed->value("tandem_slot_retained_bytes", {{"slot", "node2"}, {"wal_status", "reserved"}}));
}

TEST_F(ApiClusterTest, RequestsChangeTheCluster) {
  up();
  ASSERT_EQ(primary(), "node1");
  ASSERT_TRUE(eventually([&] { return get("node2", "/replica") == 200; }));
  ASSERT_TRUE(eventually([&] { return get("node3", "/replica") == 200; }));
  // Refusals first: nothing changes.
  EXPECT_EQ(client("node2").Post("/switchover", "{}", "application/json")->status, 401);
  EXPECT_EQ(post("node2", "/switchover", "{\"candidate\": \"node1\"}")->status, 412);
  EXPECT_EQ(primary(), "node1");

  // Switchover through node3's API (any agent takes requests).
  auto switched = post("node3", "/switchover", "{\"leader\": \"node1\", \"candidate\": \"node2\"}");
  ASSERT_TRUE(switched);
  ASSERT_EQ(switched->status, 200) << switched->body;
  std::cout << "switchover through the API: " << switched->body << "\n";
  EXPECT_EQ(primary(), "node2");
  EXPECT_TRUE(eventually([&] { return get("node2", "/primary") == 200; }));
  EXPECT_EQ(get("node1", "/primary"), 503);
  EXPECT_TRUE(eventually([&] { return get("node1", "/replica") == 200; }));
  json history = get_json("node1", "/history");
  ASSERT_TRUE(history.is_array());
  EXPECT_EQ(history.back()["from"], "node1");
  EXPECT_EQ(history.back()["to"], "node2");

  // Restart a standby: it comes back and streams.
  auto restarted = post("node3", "/restart");
  ASSERT_TRUE(restarted);
  EXPECT_EQ(restarted->status, 200) << restarted->body;
  EXPECT_TRUE(eventually([&] { return streams("node3"); }));

  // Restart the primary: it stays the primary, on the same timeline.
  std::string timeline =
      value("node2", "SELECT timeline_id::text AS v FROM pg_control_checkpoint()");
  auto restarted_primary = post("node2", "/restart");
  ASSERT_TRUE(restarted_primary);
  EXPECT_EQ(restarted_primary->status, 200) << restarted_primary->body;
  EXPECT_TRUE(eventually([&] { return primary() == "node2"; }));
  EXPECT_EQ(value("node2", "SELECT timeline_id::text AS v FROM pg_control_checkpoint()"), timeline);
  // The same through the CLI's twin, `tandem restart NODE`; a node that is not there refused.
  std::string pid_before = value("node3", "SELECT pg_postmaster_start_time()::text AS v");
  EXPECT_NE(tandem_ok({"restart", "node3"}).find("node3 restarted"), std::string::npos);
  EXPECT_NE(value("node3", "SELECT pg_postmaster_start_time()::text AS v"), pid_before);
  EXPECT_TRUE(eventually([&] { return streams("node3"); }));
  CommandOutput unknown = tandem({"restart", "node9"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.output.find("node9"), std::string::npos) << unknown.output;

  // Reinitialize: refused on the leader, done on a standby, the old data moved aside.
  EXPECT_EQ(post("node2", "/reinitialize")->status, 409);
  exec("node2", "CREATE TABLE after_switch (n int); INSERT INTO after_switch VALUES (1)");
  auto reinitialized = post("node1", "/reinitialize");
  ASSERT_TRUE(reinitialized);
  EXPECT_EQ(reinitialized->status, 200) << reinitialized->body;
  bool moved_aside = false;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    moved_aside |= entry.path().filename().string().starts_with("node1.reinitialized-");
  }
  EXPECT_TRUE(moved_aside);
  EXPECT_TRUE(eventually([&] { return streams("node1"); }));
  EXPECT_TRUE(
      eventually([&] { return value("node1", "SELECT n::text AS v FROM after_switch") == "1"; }));

  // Pause, then resume.
  EXPECT_EQ(post("node1", "/pause")->status, 200);
  EXPECT_TRUE(get_json("node3", "/cluster")["paused"].get<bool>());
  EXPECT_EQ(post("node1", "/resume")->status, 200);
  EXPECT_FALSE(get_json("node3", "/cluster")["paused"].get<bool>());

  // A forced failover to a named node.
  auto failed_over = post("node1", "/failover", "{\"candidate\": \"node3\"}");
  ASSERT_TRUE(failed_over);
  EXPECT_EQ(failed_over->status, 200) << failed_over->body;
  EXPECT_EQ(primary(), "node3");
  EXPECT_TRUE(eventually([&] { return role_in_cluster("node1", "node3") == "leader"; }));

  // Two failovers at once, to different nodes through different agents: the second is refused
  // (it never overwrites the first), the first is carried out. The cluster is paused meanwhile,
  // so that the first is still pending when the second comes.
  // Both standbys stream from node3 and say so on its timeline: a standby that has not yet
  // published the new timeline is refused as behind the claim (412), rightly, and the request
  // under test would never be pending.
  ASSERT_TRUE(eventually([&] {
    long timeline = timeline_in_cluster("node2", "node3");
    return streams("node1") && streams("node2") && timeline > 0 &&
           timeline_in_cluster("node2", "node1") == timeline &&
           timeline_in_cluster("node2", "node2") == timeline;
  }));
  EXPECT_EQ(post("node3", "/pause")->status, 200);
  auto pending = std::async(
      std::launch::async, [&] { return post("node2", "/failover", "{\"candidate\": \"node1\"}"); });
  SystemClock clock;
  auto store = SqliteStore::open(config_.store_file, clock);
  ASSERT_TRUE(store);
  ClusterLayout layout(config_.name);
  EXPECT_TRUE(eventually([&] {
    auto snapshot = (*store)->read(layout.switchover());
    return snapshot && snapshot->find(layout.switchover()) != nullptr;
  }));
  auto refused = post("node1", "/failover", "{\"candidate\": \"node2\"}");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 409) << refused->body;
  std::cout << "a second failover while one is pending: " << refused->body << "\n";
  EXPECT_NE(refused->body.find("a failover from node3 to node1 is already under way"),
            std::string::npos);
  EXPECT_EQ(post("node3", "/resume")->status, 200);
  auto carried = pending.get();
  ASSERT_TRUE(carried);
  EXPECT_EQ(carried->status, 200) << carried->body;
  EXPECT_TRUE(eventually([&] { return primary() == "node1"; }));
  EXPECT_TRUE(eventually([&] { return streams("node3"); }));
}

// The example configuration, unchanged, with the cluster's ports from the environment.
// tandem restart --all (issue 20.2): every postmaster restarted once, the standbys first, the
// primary role moved by a switchover before its old holder restarts; a probe writing through
// it all loses no acknowledged write. On a cluster already a node short: refused, nothing
// restarted.
// Issue 19.3: an idle standby sleeps between cycles until a cycle before the lease could lapse
// (core/observe_rest.h, rest_sleep), and a leader that hands it the lease wakes it (POST /wake:
// the one POST without the token, for it changes nothing but when the next cycle runs, and so
// no agent sends the token to a port it does not know is an agent's). Counted by the agents'
// own metrics.
TEST_F(ApiClusterTest, AnIdleStandbyRestsBetweenCyclesAndAHandOverWakesIt) {
  up();
  ASSERT_EQ(primary(), "node1");
  ASSERT_TRUE(eventually([&] { return get("node2", "/replica") == 200; }));
  ASSERT_TRUE(eventually([&] { return get("node3", "/replica") == 200; }));
  EXPECT_EQ(client("node2").Post("/wake", "", "text/plain")->status, 200);
  EXPECT_EQ(client("node2").Get("/wake")->status, 405);
  EXPECT_EQ(client("node2").Post("/restart", "", "text/plain")->status, 401) << "others need it";
  auto cycles = [&](const std::string& name) {
    auto reply = client(name).Get("/metrics");
    if (!reply || reply->status != 200) return -1L;
    std::istringstream lines(reply->body);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("tandem_agent_cycles_total ", 0) == 0) return std::stol(line.substr(26));
    }
    return -1L;
  };
  std::this_thread::sleep_for(std::chrono::seconds(2));  // settled: the answers repeat
  long standby_before = cycles("node2"), primary_before = cycles("node1");
  ASSERT_GE(standby_before, 0);
  std::this_thread::sleep_for(std::chrono::seconds(5));
  long standby = cycles("node2") - standby_before;
  long leader = cycles("node1") - primary_before;
  std::cout << "in 5 s idle: the standby's agent ran " << standby << " cycles, the primary's "
            << leader << "\n";
  // Ten a second without the rest (50); 650-800 ms apart at rest (ttl 1 s: until a loop interval
  // before the lease, renewed every 250 ms, could lapse), so about seven.
  EXPECT_LT(standby, 11) << "the idle standby does not rest";
  EXPECT_GT(standby, 3) << "the idle standby's agent stopped cycling";

  auto switched = post("node3", "/switchover", "{\"leader\": \"node1\", \"candidate\": \"node2\"}");
  ASSERT_TRUE(switched);
  ASSERT_EQ(switched->status, 200) << switched->body;
  EXPECT_EQ(primary(), "node2");
  std::string log = read_file(config_.log_dir + "/node1.agent.log").value_or("");
  EXPECT_NE(log.find("woke the agent of node2, node3: the lease ended early"), std::string::npos)
      << log;
}

TEST_F(ApiClusterTest, ARollingRestartRestartsEveryNodeOnceAndLosesNoWrite) {
  up();
  ASSERT_EQ(primary(), "node1");
  ASSERT_TRUE(eventually([&] { return streams("node2") && streams("node3"); }));
  auto started = [&] {
    std::map<std::string, std::string> at;
    for (const char* name : {"node1", "node2", "node3"}) {
      at[name] = value(name, "SELECT pg_postmaster_start_time()::text AS v");
    }
    return at;
  };
  auto before = started();
  bench::WriteProbe probe(bench::any_primary_conninfo(config_), std::chrono::milliseconds(20));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 10; }));
  std::size_t acknowledged = probe.acknowledged().size();
  std::string out = tandem_ok({"restart", "--all"});
  std::cout << out;
  EXPECT_NE(out.find("restarted every node, one at a time (4 steps)"), std::string::npos) << out;
  EXPECT_LT(out.find("restarting node2"), out.find("switchover to"));
  EXPECT_LT(out.find("switchover to"), out.find("restarting node1"));
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= acknowledged + 10; }));
  probe.stop();
  auto after = started();
  for (const auto& [name, at] : before) {
    EXPECT_NE(after[name], at) << name << " was not restarted";
  }
  EXPECT_NE(primary(), "node1");
  auto missing = probe.missing_on(bench::any_primary_conninfo(config_));
  ASSERT_TRUE(missing);
  EXPECT_TRUE(missing->empty()) << missing->size() << " acknowledged writes lost";

  // One node short: refused, and nothing restarted.
  tandem_ok({"local", "stop", "node1"});
  auto short_before = started();
  CommandOutput refused = tandem({"restart", "--all"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("node1 does not stream from the primary"), std::string::npos)
      << refused.output;
  EXPECT_EQ(value("node2", "SELECT pg_postmaster_start_time()::text AS v"), short_before["node2"]);
  EXPECT_EQ(value("node3", "SELECT pg_postmaster_start_time()::text AS v"), short_before["node3"]);
  CommandOutput both = tandem({"restart", "node2", "--all"});
  EXPECT_NE(both.output.find("name one node, or --all"), std::string::npos) << both.output;
}

// tandem config set | show | unset (issue 20.1): checked against the server's pg_settings,
// stored once, applied by every agent; a setting that needs a restart shows as pending in
// status and /cluster until `tandem restart --all --pending`; bad input stores nothing.
TEST_F(ApiClusterTest, ClusterSettingsReachEveryNodeAndWaitForARestartWhereNeeded) {
  up();
  ASSERT_TRUE(eventually([&] { return streams("node2") && streams("node3"); }));
  const std::vector<std::string> nodes = {"node1", "node2", "node3"};
  auto on_every_node = [&](const std::string& name, const std::string& expected) {
    return eventually(
        [&] {
          for (const std::string& each : nodes) {
            if (value(each, "SELECT current_setting('" + name + "') AS v") != expected)
              return false;
          }
          return true;
        },
        std::chrono::seconds(10));
  };
  std::string out =
      tandem_ok({"config", "set", "work_mem=64MB", "log_min_duration_statement=250ms"});
  std::cout << out;
  EXPECT_NE(out.find("stored for the cluster"), std::string::npos) << out;
  EXPECT_NE(out.find("applied on node1, node2, node3"), std::string::npos) << out;
  EXPECT_TRUE(on_every_node("work_mem", "64MB"));
  EXPECT_TRUE(on_every_node("log_min_duration_statement", "250ms"));
  json shown = json::parse(tandem_ok({"config", "show", "--json"}), nullptr, false);
  ASSERT_TRUE(shown.is_object());
  EXPECT_EQ(shown["settings"]["work_mem"], "64MB");
  long revision = shown["revision"];

  // Bad input: a clear line each, nothing stored (one bad assignment stores none of the others).
  struct Refusal {
    std::vector<std::string> args;
    const char* says;
  };
  std::vector<Refusal> refusals = {
      {{"config", "set", "work_mem=lots"}, "work_mem: \"lots\" is not a number"},
      {{"config", "set", "no_such_setting=1"}, "no_such_setting: PostgreSQL has no such setting"},
      {{"config", "set", "port=6000"}, "port is tandem's to set"},
      {{"config", "set", "synchronous_standby_names=*"}, "synchronous_standby_names is tandem's"},
      {{"config", "set", "work_mem=8MB", "shared_buffers=8kB"},
       "shared_buffers: \"8kB\" is outside"},
      {{"config", "set", "wal_block_size=4096"}, "cannot be set"},
      {{"config", "set", "work_mem"}, "expected NAME=VALUE"},
      {{"config", "unset", "statement_timeout"}, "statement_timeout is not set for the cluster"},
  };
  for (const Refusal& refusal : refusals) {
    CommandOutput refused = tandem(refusal.args);
    EXPECT_NE(refused.exit_code, 0) << refused.output;
    EXPECT_NE(refused.output.find(refusal.says), std::string::npos) << refused.output;
  }
  shown = json::parse(tandem_ok({"config", "show", "--json"}), nullptr, false);
  EXPECT_EQ(shown["revision"], revision);
  EXPECT_EQ(shown["settings"]["work_mem"], "64MB");
  // A value only the server can judge: stored, refused by every server, said; unset again.
  CommandOutput zone = tandem({"config", "set", "TimeZone=Nowhere/Else"});
  EXPECT_NE(zone.exit_code, 0) << zone.output;
  EXPECT_NE(zone.output.find("node2 refused"), std::string::npos) << zone.output;
  EXPECT_NE(zone.output.find("tandem config unset NAME"), std::string::npos) << zone.output;
  EXPECT_NE(value("node1", "SELECT current_setting('TimeZone') AS v"), "Nowhere/Else");
  tandem_ok({"config", "unset", "timezone"});

  // A setting that needs a restart: applied, and pending everywhere until the rolling restart.
  out = tandem_ok({"config", "set", "shared_buffers=64MB"});
  std::cout << out;
  EXPECT_NE(out.find("shared_buffers waits for a restart on node1, node2, node3"),
            std::string::npos)
      << out;
  std::string status = tandem_ok({"status"});
  EXPECT_NE(status.find("node2 waits for a restart to apply shared_buffers"), std::string::npos)
      << status;
  EXPECT_TRUE(eventually([&] {
    json cluster = get_json("node3", "/cluster");
    if (!cluster.is_object()) return false;
    for (const json& member : cluster["members"]) {
      if (member["pending_restart"] != json::array({"shared_buffers"})) return false;
    }
    return true;
  })) << get_json("node3", "/cluster").dump();
  EXPECT_EQ(value("node1", "SELECT current_setting('shared_buffers') AS v"), "128MB");
  bench::WriteProbe probe(bench::any_primary_conninfo(config_), std::chrono::milliseconds(20));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 10; }));
  out = tandem_ok({"restart", "--all", "--pending"});
  std::cout << out;
  EXPECT_NE(out.find("restarted the nodes that waited for a restart"), std::string::npos) << out;
  std::size_t acknowledged = probe.acknowledged().size();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= acknowledged + 10; }));
  probe.stop();
  auto missing = probe.missing_on(bench::any_primary_conninfo(config_));
  ASSERT_TRUE(missing);
  EXPECT_TRUE(missing->empty()) << missing->size() << " acknowledged writes lost";
  EXPECT_TRUE(on_every_node("shared_buffers", "64MB"));
  status = tandem_ok({"status"});
  EXPECT_EQ(status.find("waits for a restart"), std::string::npos) << status;
  out = tandem_ok({"restart", "--all", "--pending"});
  EXPECT_NE(out.find("no node waits for a restart: nothing restarted"), std::string::npos) << out;

  // Unset: each node's own value rules again.
  tandem_ok({"config", "unset", "work_mem"});
  EXPECT_TRUE(on_every_node("work_mem", "4MB"));
  EXPECT_TRUE(on_every_node("log_min_duration_statement", "250ms"));
}

TEST_F(ApiClusterTest, HaproxyFollowsTheFailover) {
  up();
  int ports = tandem::find_free_ports("127.0.0.1", 2).value_or(0);
  ASSERT_NE(ports, 0);
  std::map<std::string, std::string> env = {{"TANDEM_PRIMARY_PORT", std::to_string(ports)},
                                            {"TANDEM_REPLICAS_PORT", std::to_string(ports + 1)}};
  for (const NodeConfig& each : config_.nodes) {
    std::string upper = each.name;
    for (char& c : upper) c = static_cast<char>(std::toupper(c));
    env["TANDEM_" + upper + "_PORT"] = std::to_string(each.port);
    env["TANDEM_" + upper + "_API_PORT"] = std::to_string(each.api_port);
  }
  ChildProcess haproxy(
      {.program = "haproxy",
       .args = {"-f", std::string(TANDEM_SOURCE_DIR) + "/examples/haproxy.cfg", "-db"},
       .env = env,
       .log_file = dir_ + "/haproxy.log"});
  auto through = [&](int port) {
    std::string conninfo = make_conninfo({{"host", "127.0.0.1"},
                                          {"port", std::to_string(port)},
                                          {"user", "test_app"},
                                          {"dbname", "test_app"},
                                          {"passfile", config_.password_file},
                                          {"connect_timeout", "2"}});
    auto connection = Connection::open(conninfo);
    if (!connection) return std::string();
    auto rows = connection->query(
        "SELECT inet_server_port()::text || ' ' || (NOT pg_is_in_recovery())::text AS v");
    return rows && !rows->empty() ? rows->text(0, "v") : std::string();
  };
  auto writable_through_haproxy = [&](const std::string& name) {
    return through(ports) == std::to_string(node(name).port) + " true";
  };
  // HAProxy starts with every server up; once its checks have run (two 200 ms checks for the
  // primary port, two 500 ms ones for the replicas port), every connection to the primary port
  // reaches node1, every one to the replicas port a standby.
  auto settled = [&](const std::string& primary_node) {
    for (int attempt = 0; attempt < 6; ++attempt) {
      if (!writable_through_haproxy(primary_node)) return false;
      if (!through(ports + 1).ends_with(" false")) return false;
    }
    return true;
  };
  ASSERT_TRUE(eventually([&] { return settled("node1"); }));

  auto crashed_at = std::chrono::steady_clock::now();
  tandem_ok({"local", "crash", "node1"});
  std::string new_primary;
  ASSERT_TRUE(eventually([&] {
    new_primary = primary();
    return !new_primary.empty() && new_primary != "node1" && writable_through_haproxy(new_primary);
  }));
  auto took =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - crashed_at);
  std::cout << "through HAProxy: writes reach " << new_primary << " " << took.count()
            << " ms after node1's host crashed\n";
  EXPECT_TRUE(eventually([&] { return settled(new_primary); }));
  EXPECT_TRUE(haproxy.running());
}

// The dashboard in headless Chromium: three nodes with their roles, a switchover made with the
// token, the roles changing on screen. Leaves a screenshot in the build directory.
TEST_F(ApiClusterTest, DashboardShowsTheClusterAndSwitchesOver) {
  up();
  auto browser = HeadlessBrowser::launch(dir_);
  ASSERT_TRUE(browser) << browser.error().message;
  HeadlessBrowser& page = **browser;
  ASSERT_TRUE(page.navigate(fmt::format("http://127.0.0.1:{}/", node("node1").api_port)));
  const std::string roles =
      "Object.fromEntries([...document.querySelectorAll('#members tbody tr')]"
      ".map(row => [row.dataset.node, row.querySelector('.role').textContent]))";
  json shown;
  auto roles_are = [&](const json& expected) {
    auto value = page.evaluate(roles);
    shown = value ? *value : json();
    return shown == expected;
  };
  ASSERT_TRUE(eventually([&] {
    return roles_are({{"node1", "leader"}, {"node2", "replica"}, {"node3", "replica"}});
  })) << shown.dump();
  // The topology draws every node, the slots table lists the primary's two slots.
  EXPECT_EQ(page.evaluate("document.querySelectorAll('#topology g.node').length").value(), 3);
  EXPECT_TRUE(eventually(
      [&] { return page.evaluate("document.querySelectorAll('#slots tbody tr').length") == 2; }));
  // Read-only until the token is given.
  EXPECT_EQ(page.evaluate("document.querySelector('#switchover-button').disabled").value(), true);
  ASSERT_TRUE(page.click("#token"));
  ASSERT_TRUE(page.type(token_));
  ASSERT_TRUE(page.click("#token-save"));
  EXPECT_TRUE(eventually([&] {
    return page.evaluate("document.querySelector('#switchover-button').disabled") == false;
  }));
  ASSERT_TRUE(page.evaluate("document.querySelector('#candidate').value = 'node2'"));
  ASSERT_TRUE(page.click("#switchover-button"));
  EXPECT_TRUE(eventually([&] {
    return roles_are({{"node1", "replica"}, {"node2", "leader"}, {"node3", "replica"}});
  })) << shown.dump();
  EXPECT_EQ(primary(), "node2");
  EXPECT_TRUE(eventually([&] {
    auto result = page.evaluate("document.querySelector('#action-result').textContent");
    return result && result->get<std::string>().find("switched over") != std::string::npos;
  }));
  EXPECT_TRUE(eventually([&] {
    auto row = page.evaluate("document.querySelector('#history tbody tr').textContent");
    return row && row->is_string() && row->get<std::string>().find("node2") != std::string::npos;
  }));
  EXPECT_TRUE(eventually([&] {
    // One line per member that has been a standby in the window: node2 and node3, then node1.
    auto lines = page.evaluate("document.querySelectorAll('#lag-chart polyline').length");
    return lines && lines->get<int>() >= 2;
  }));
  // Every panel fits from 1280 px up: none wider than the window, none scrolling sideways
  // (at 1280 the members table used to hide its last columns).
  const std::string overflowing =
      "[...document.querySelectorAll('main section')].filter(s => "
      "s.scrollWidth > s.clientWidth || s.getBoundingClientRect().right > window.innerWidth)"
      ".map(s => s.querySelector('h2').textContent + ': ' + s.scrollWidth + ' px in ' + "
      "s.clientWidth)";
  std::filesystem::create_directories(TANDEM_ARTIFACTS_DIR);
  for (int width : {1280, 1920}) {
    ASSERT_TRUE(page.resize(width, 900));
    auto cut = page.evaluate(overflowing);
    ASSERT_TRUE(cut);
    EXPECT_EQ(*cut, json::array()) << "at " << width << " px";
    std::string screenshot =
        fmt::format("{}/dashboard-{}.png", std::string(TANDEM_ARTIFACTS_DIR), width);
    ASSERT_TRUE(page.screenshot(screenshot));
    EXPECT_GT(std::filesystem::file_size(screenshot), 10000u);
    std::cout << "screenshot: " << screenshot << "\n";
  }
}

// Issue 11 against a real agent: garbage in a URL is a 400, a foreign Host a 421, and 500 slow or
// idle sockets leave /health and /ping answering (the times are printed; the deadline is
// generous: the figures come from bench/tandem-api-load).
TEST_F(ApiClusterTest, HostileClientsDoNotStopTheApi) {
  up();
  std::string name = primary();
  for (const char* path : {"/%ff", "/replica?lag=%ff"}) {
    auto reply = client(name).Get(path);
    ASSERT_TRUE(reply) << path;
    EXPECT_EQ(reply->status, 400) << path << ": " << reply->body;
  }
  auto posted = post(name, "/%ff");
  ASSERT_TRUE(posted);
  EXPECT_EQ(posted->status, 400) << posted->body;
  auto rebound = client(name).Get("/cluster", {{"Host", "attacker.example:8008"}});
  ASSERT_TRUE(rebound);
  EXPECT_EQ(rebound->status, 421) << rebound->body;

  int port = node(name).api_port;
  std::vector<int> held;
  for (int index = 0; index < 500; ++index) {
    std::string source = "127.0.9." + std::to_string(2 + index / 25);  // 25 per address
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in local{.sin_family = AF_INET};
    inet_pton(AF_INET, source.c_str(), &local.sin_addr);
    bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local);
    sockaddr_in remote{.sin_family = AF_INET, .sin_port = htons(static_cast<uint16_t>(port))};
    inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote), 0);
    if (index % 2 == 0) {  // slow: a request that never ends; the others idle
      std::string start = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
      send(fd, start.data(), start.size(), MSG_NOSIGNAL);
    }
    held.push_back(fd);
  }
  httplib::Client probe("127.0.0.1", port);
  probe.set_connection_timeout(std::chrono::seconds(3));
  probe.set_read_timeout(std::chrono::seconds(3));
  for (const char* path : {"/health", "/ping?from=node2", "/health", "/ping?from=node3"}) {
    auto started = std::chrono::steady_clock::now();
    httplib::Headers headers;  // a ping is recorded only with the agents' token
    if (std::string_view(path).starts_with("/ping")) {
      headers.emplace("Authorization", "Bearer " + token_);
    }
    auto reply = probe.Get(path, headers);
    double took =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    ASSERT_TRUE(reply) << path << ": " << httplib::to_string(reply.error());
    EXPECT_EQ(reply->status, 200) << path;
    std::cout << "  " << path << " on " << name << " with 500 slow/idle sockets: " << took
              << " ms\n";
  }
  for (int fd : held) close(fd);
}

}  // namespace
}  // namespace tandem::testing
