// The agent's HTTP API over a real socket, with the store in memory and the agent's snapshot
// set by the test: every endpoint, every status code, every refusal — and that a refused
// request changes nothing in the store.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "../support/prometheus_text.h"
#include "agent/peer_pinger.h"
#include "api/http_api.h"
#include "api_server_fixture.h"
#include "dcs/cluster_layout.h"
#include "dcs/memory_store.h"
#include "proc/ports.h"

namespace tandem {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// What a plain-HTTP client gets from a port that speaks TLS: no HTTP answer.
std::string client_or_plain(int port) {
  httplib::Client plain("127.0.0.1", port);
  plain.set_read_timeout(std::chrono::seconds(2));
  auto reply = plain.Get("/primary");
  return json{{"ok", reply && reply->status == 200}}.dump();
}

const char* kPosts[] = {"/switchover",   "/failover", "/restart",
                        "/reinitialize", "/pause",    "/resume"};

TEST_F(ApiServerTest, HealthChecksOfTheLeader) {
  start();
  std::pair<const char*, int> expected[] = {{"/primary", 200},
                                            {"/read-write", 200},
                                            {"/master", 200},
                                            {"/leader", 200},
                                            {"/replica", 503},
                                            {"/read-only", 200},
                                            {"/health", 200},
                                            {"/liveness", 200},
                                            {"/readiness", 200},
                                            {"/replica?lag=1MB", 503},
                                            {"/replica?lag=sideways", 400}};
  for (const auto& [path, status] : expected) {
    auto reply = client_->Get(path);
    ASSERT_TRUE(reply) << path;
    EXPECT_EQ(reply->status, status) << path << ": " << reply->body;
    EXPECT_EQ(reply->get_header_value("Content-Type"), "application/json") << path;
  }
  auto body = json::parse(client_->Get("/primary")->body);
  EXPECT_EQ(body["name"], "node1");
  EXPECT_EQ(body["role"], "primary");
  EXPECT_EQ(body["leader"], true);
  EXPECT_EQ(body["last_decision"], "none");
}

TEST_F(ApiServerTest, HealthChecksOfAStandby) {
  // The server speaks for node1; its snapshot now says standby (as after a switchover).
  AgentSnapshot snapshot{.view = view(), .cycles = 5, .at = clock_.steady_now()};
  snapshot.node.state = PgState::kStandby;
  board_.publish(snapshot, 2000);
  start();
  EXPECT_EQ(client_->Get("/primary")->status, 503);
  EXPECT_EQ(client_->Get("/replica")->status, 200);
  EXPECT_EQ(client_->Get("/read-only")->status, 200);
  EXPECT_EQ(client_->Get("/health")->status, 200);
  // Not streaming any more: no reads either.
  snapshot.node.not_streaming_for = milliseconds(500);
  board_.publish(snapshot, 3000);
  EXPECT_EQ(client_->Get("/replica")->status, 503);
  EXPECT_EQ(client_->Get("/read-only")->status, 503);
  EXPECT_EQ(client_->Get("/readiness")->status, 503);
  EXPECT_EQ(client_->Get("/health")->status, 200);
}

TEST_F(ApiServerTest, ClusterHistoryLagAndMetrics) {
  start();
  auto cluster = client_->Get("/cluster");
  ASSERT_TRUE(cluster);
  EXPECT_EQ(cluster->status, 200);
  json document = json::parse(cluster->body);
  EXPECT_EQ(document["leader"], "node1");
  EXPECT_EQ(document["timeline"], 1);
  ASSERT_EQ(document["members"].size(), 3u);
  EXPECT_EQ(document["members"][0]["role"], "leader");
  EXPECT_EQ(document["members"][0]["api_url"],
            "http://127.0.0.1:" + std::to_string(config_.nodes[0].api_port));
  EXPECT_EQ(document["members"][2]["role"], "replica");
  EXPECT_EQ(document["members"][2]["lag_bytes"], 0x1000000);
  EXPECT_EQ(document["slots"][0]["name"], "node2");
  EXPECT_EQ(document["slots"][0]["retained_bytes"], 1024);

  json history = json::parse(client_->Get("/history")->body);
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0]["to"], "node1");
  EXPECT_EQ(history[0]["reason"], "bootstrapped the cluster");

  json lag = json::parse(client_->Get("/lag")->body);
  ASSERT_EQ(lag["samples"].size(), 1u);
  EXPECT_EQ(lag["samples"][0]["lag"]["node3"], 0x1000000);

  auto metrics = client_->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  auto parsed = testing::parse_prometheus_text(metrics->body);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(testing::naming_violations(*parsed, "tandem_"), std::vector<std::string>{});
  EXPECT_EQ(parsed->value("tandem_leader"), 1);
  EXPECT_EQ(parsed->value("tandem_failovers_total"), 0);
  EXPECT_EQ(parsed->value("tandem_synchronous_standbys"), 0);
  // Synchronous mode, two standbys named (ha.synchronous_node_count 2).
  ASSERT_TRUE(store_.put(layout_.sync(), encode_sync("node1", {"node2", "node3"}), std::nullopt));
  publish_leader_snapshot();
  parsed = testing::parse_prometheus_text(client_->Get("/metrics")->body);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->value("tandem_synchronous_standbys"), 2);
  document = json::parse(client_->Get("/cluster")->body);
  EXPECT_EQ(document["sync_standbys"], json({"node2", "node3"}));
  EXPECT_EQ(document["members"][1]["role"], "sync_standby");
  EXPECT_EQ(document["members"][2]["role"], "sync_standby");
}

TEST_F(ApiServerTest, DashboardIsServedFromTheBinary) {
  start();
  std::pair<const char*, const char*> assets[] = {
      {"/", "text/html; charset=utf-8"},
      {"/index.html", "text/html; charset=utf-8"},
      {"/dashboard.js", "text/javascript; charset=utf-8"},
      {"/dashboard.css", "text/css; charset=utf-8"}};
  for (const auto& [path, type] : assets) {
    auto reply = client_->Get(path);
    ASSERT_TRUE(reply) << path;
    EXPECT_EQ(reply->status, 200) << path;
    EXPECT_EQ(reply->get_header_value("Content-Type"), type) << path;
    EXPECT_GT(reply->body.size(), 500u) << path;
  }
  EXPECT_NE(client_->Get("/")->body.find("<script src=\"/dashboard.js\">"), std::string::npos);
  EXPECT_EQ(client_->Get("/nothing-here")->status, 404);
}

TEST_F(ApiServerTest, EveryChangeNeedsTheToken) {
  start();
  auto before = store_state();
  for (const char* path : kPosts) {
    auto missing = post(path, "{}", "");
    ASSERT_TRUE(missing) << path;
    EXPECT_EQ(missing->status, 401) << path;
    EXPECT_EQ(missing->get_header_value("WWW-Authenticate"), "Bearer realm=\"tandem\"") << path;
    EXPECT_EQ(post(path, "{}", "wrong")->status, 401) << path;
    EXPECT_EQ(post(path, "{}", "s3cret-and-more")->status, 401) << path;
    httplib::Headers basic = {{"Authorization", "Basic czNjcmV0"}};
    EXPECT_EQ(client_->Post(path, basic, "{}", "application/json")->status, 401) << path;
    // No Content-Length at all (curl -X POST): still refused, not a 400 from the HTTP layer.
    auto bare = client_->Post(path);
    ASSERT_TRUE(bare);
    EXPECT_EQ(bare->status, 401) << path;
  }
  EXPECT_EQ(store_state(), before);
}

TEST_F(ApiServerTest, WithoutATokenFileChangesAreDisabled) {
  std::filesystem::remove(config_.api.token_file);
  start();
  auto before = store_state();
  for (const char* path : kPosts) {
    auto reply = post(path, "{}", "s3cret");
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 403) << path;
  }
  EXPECT_EQ(client_->Get("/primary")->status, 200);
  EXPECT_EQ(store_state(), before);
}

TEST_F(ApiServerTest, ATokenFileOthersMayReadIsRefused) {
  chmod(config_.api.token_file.c_str(), 0644);
  ApiServer server(config_, config_.nodes[0], board_, store_, clock_);
  auto started = server.start();
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message.find("chmod 600"), std::string::npos)
      << started.error().message;
}

TEST_F(ApiServerTest, MalformedOrRefusedRequestsChangeNothing) {
  start();
  auto before = store_state();
  struct {
    const char* path;
    const char* body;
    int status;
    const char* says;
  } cases[] = {
      {"/switchover", "{leader", 400, "not JSON"},
      {"/switchover", "[1, 2]", 400, "JSON object"},
      {"/switchover", "{\"candidate\": 2}", 400, "must be a string"},
      {"/switchover", "{\"to\": \"node2\"}", 400, "unknown field 'to'"},
      {"/switchover", "{\"scheduled_at\": \"2030-01-01T00:00:00Z\"}", 400, "not supported"},
      {"/switchover", "{\"candidate\": \"node9\"}", 400, "unknown node"},
      {"/switchover", "{\"leader\": \"node2\"}", 412, "does not lead"},
      {"/switchover", "{\"candidate\": \"node1\"}", 412, "already leads"},
      {"/switchover", "{\"candidate\": \"node3\"}", 412, "nofailover"},
      {"/failover", "{}", 400, "needs a candidate"},
      {"/failover", "{\"candidate\": \"node2\", \"allow_data_loss\": \"yes\"}", 400,
       "must be a boolean"},
      {"/failover", "{\"candidate\": \"node1\"}", 412, "already leads"},
      {"/failover", "{\"leader\": \"node3\", \"candidate\": \"node2\"}", 412, "does not lead"},
      {"/pause", "{\"now\": true}", 400, "unknown field"},
      {"/resume", "\"yes\"", 400, "JSON object"},
      {"/restart", "{\"schedule\": \"later\"}", 400, "unknown field"},
      {"/reinitialize", "nonsense", 400, "not JSON"},
  };
  for (const auto& each : cases) {
    auto reply = post(each.path, each.body);
    ASSERT_TRUE(reply) << each.path << " " << each.body;
    EXPECT_EQ(reply->status, each.status) << each.path << " " << each.body << ": " << reply->body;
    EXPECT_NE(reply->body.find(each.says), std::string::npos)
        << each.path << " " << each.body << ": " << reply->body;
    EXPECT_TRUE(json::parse(reply->body).contains("error"));
  }
  EXPECT_EQ(store_state(), before);
}

TEST_F(ApiServerTest, WrongMethodsAndUnknownPaths) {
  start();
  for (const char* path : kPosts) {
    auto reply = client_->Get(path);
    EXPECT_EQ(reply->status, 405) << path;
    EXPECT_EQ(reply->get_header_value("Allow"), "POST") << path;
  }
  for (const char* path : {"/primary", "/replica", "/cluster", "/history", "/metrics"}) {
    auto reply = post(path, "{}");
    EXPECT_EQ(reply->status, 405) << path;
    EXPECT_EQ(reply->get_header_value("Allow"), "GET") << path;
  }
  EXPECT_EQ(post("/promote-everyone", "{}")->status, 404);
}

TEST_F(ApiServerTest, ServesHttpsWithACertificate) {
  std::string cert = dir_ + "/api.crt", key = dir_ + "/api.key";
  std::string command =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-keyout " +
      key + " -out " + cert + " 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0);
  publish_leader_snapshot();  // fresh again: making the key may take longer than a TTL
  config_.api.tls_cert_file = cert;
  config_.api.tls_key_file = key;
  server_ = std::make_unique<ApiServer>(config_, config_.nodes[0], board_, store_, clock_);
  ASSERT_TRUE(server_->start());
  std::string address = "https://127.0.0.1:" + std::to_string(config_.nodes[0].api_port);
  httplib::Client secure(address);
  secure.set_ca_cert_path(cert.c_str());
  secure.enable_server_certificate_verification(true);
  auto health = secure.Get("/primary");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  auto paused = secure.Post("/pause", {{"Authorization", "Bearer s3cret"}}, "", "application/json");
  ASSERT_TRUE(paused);
  EXPECT_EQ(paused->status, 200);
  EXPECT_EQ(json::parse(client_or_plain(config_.nodes[0].api_port))["ok"], false);
  // A certificate that does not go with its key: the server refuses to start.
  config_.api.tls_key_file = cert;
  ApiServer broken(config_, config_.nodes[0], board_, store_, clock_);
  auto refused = broken.start();
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("cannot use the certificate"), std::string::npos)
      << refused.error().message;
}

TEST_F(ApiServerTest, PauseAndResume) {
  start();
  auto paused = post("/pause", "");
  ASSERT_TRUE(paused);
  EXPECT_EQ(paused->status, 200) << paused->body;
  EXPECT_TRUE(view().paused);
  EXPECT_EQ(post("/resume", "{}")->status, 200);
  EXPECT_FALSE(view().paused);
}

// A stand-in for the agents: once the request is in the store, node2 takes the lease and
// reports itself primary, as the real agents do.
TEST_F(ApiServerTest, SwitchoverWaitsUntilTheNewPrimaryRuns) {
  start();
  std::atomic<bool> done{false};
  std::thread agents([&] {
    while (!done) {
      auto request = view().switchover;
      if (request && request->to == "node2") {
        ASSERT_TRUE(store_.put(layout_.leader(), "node2", std::nullopt));
        put_member({.name = "node2", .state = PgState::kPrimary, .timeline = 2});
        return;
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
  });
  auto reply = post("/switchover", "{\"leader\": \"node1\", \"candidate\": \"node2\"}");
  done = true;
  agents.join();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200) << reply->body;
  EXPECT_EQ(json::parse(reply->body)["leader"], "node2");
}

TEST_F(ApiServerTest, ASwitchoverNobodyCarriesOutIsWithdrawn) {
  start();
  server_->set_request_timeout(milliseconds(300));
  auto reply = post("/switchover", "{\"candidate\": \"node2\"}");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 503) << reply->body;
  EXPECT_NE(reply->body.find("withdrawn"), std::string::npos);
  EXPECT_FALSE(view().switchover) << "the request was left behind";
  EXPECT_TRUE(view().leader_is("node1"));
}

TEST_F(ApiServerTest, PingsAreRecordedAndAnsweredWithWhatThisAgentHeard) {
  ContactBook contacts("node1", {"node1", "node2", "node3"}, clock_.steady_now());
  server_ =
      std::make_unique<ApiServer>(config_, config_.nodes[0], board_, store_, clock_, &contacts);
  ASSERT_TRUE(server_->start());
  client_ = std::make_unique<httplib::Client>("127.0.0.1", config_.nodes[0].api_port);
  std::this_thread::sleep_for(milliseconds(50));
  auto reply = client_->Get("/ping?from=node2", {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  auto answer = decode_ping_reply(reply->body);
  ASSERT_TRUE(answer) << reply->body;
  EXPECT_EQ(answer->state, PgState::kPrimary);
  EXPECT_TRUE(answer->leader);
  EXPECT_EQ(answer->follows, "node1");                       // who leads, in its view
  EXPECT_FALSE(answer->standby_data);                        // a primary's data directory
  EXPECT_LT(answer->silence.at("node2"), milliseconds(20));  // just pinged
  EXPECT_GE(answer->silence.at("node3"), milliseconds(50));  // never: since the start
  EXPECT_FALSE(answer->silence.contains("node1"));
}

// Issue 16.8: a ping decides who may take over, so one without the agents' token (a host
// claiming to be node2, say) is refused and not recorded: node2's silence goes on.
TEST_F(ApiServerTest, APingWithoutTheTokenIsRefusedAndNotRecorded) {
  ContactBook contacts("node1", {"node1", "node2", "node3"}, clock_.steady_now());
  server_ =
      std::make_unique<ApiServer>(config_, config_.nodes[0], board_, store_, clock_, &contacts);
  ASSERT_TRUE(server_->start());
  client_ = std::make_unique<httplib::Client>("127.0.0.1", config_.nodes[0].api_port);
  std::this_thread::sleep_for(milliseconds(60));
  for (const httplib::Headers& headers :
       {httplib::Headers{}, httplib::Headers{{"Authorization", "Bearer wrong"}}}) {
    auto reply = client_->Get("/ping?from=node2", headers);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 401) << reply->body;
  }
  EXPECT_GE(contacts.silence(clock_.steady_now()).at("node2"), milliseconds(60))
      << "a refused ping was recorded as node2's";
  auto reply = client_->Get("/ping?from=node3", {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_LT(contacts.silence(clock_.steady_now()).at("node3"), milliseconds(20));
}

TEST_F(ApiServerTest, NodeRequestsGoToTheAgentsThread) {
  start();
  std::atomic<bool> done{false};
  std::vector<NodeRequest> carried_out;
  std::thread agent([&] {
    while (!done) {
      if (auto request = board_.take_request()) {
        carried_out.push_back(*request);
        board_.finish(*request == NodeRequest::kRestart
                          ? Status{}
                          : fail(ErrorCode::kConflict, "node1 is the leader"));
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
  });
  auto restarted = post("/restart", "");
  auto reinitialized = post("/reinitialize", "{}");
  done = true;
  agent.join();
  ASSERT_TRUE(restarted && reinitialized);
  EXPECT_EQ(restarted->status, 200) << restarted->body;
  EXPECT_EQ(reinitialized->status, 409) << reinitialized->body;
  EXPECT_EQ(carried_out,
            (std::vector<NodeRequest>{NodeRequest::kRestart, NodeRequest::kReinitialize}));
}

}  // namespace
}  // namespace tandem
