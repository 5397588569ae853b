// The fixture of the API's unit tests: the server over a real socket, the store in memory, the
// agent's snapshot set by the test (node1 leads; node2 and node3 are standbys, node3 nofailover).
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "api/http_api.h"
#include "dcs/cluster_layout.h"
#include "dcs/memory_store.h"
#include "proc/ports.h"

namespace tandem {

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/tandem-api-XXXXXX";
    dir_ = mkdtemp(pattern);
    int port = find_free_ports("127.0.0.1", 4).value_or(0);
    ASSERT_NE(port, 0);
    config_.name = "unit";
    for (int index = 0; index < 3; ++index) {
      std::string name = "node" + std::to_string(index + 1);
      config_.nodes.push_back({.name = name,
                               .port = 5432 + index,
                               .data_dir = dir_ + "/" + name,
                               .nofailover = index == 2,
                               .api_port = index == 0 ? port : 0});
    }
    config_.api.token_file = dir_ + "/api.token";
    std::ofstream(config_.api.token_file) << "s3cret\n";
    chmod(config_.api.token_file.c_str(), 0600);
    seed_store();
    publish_leader_snapshot();
  }

  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void start() {
    server_ = std::make_unique<ApiServer>(config_, config_.nodes[0], board_, store_, clock_);
    auto started = server_->start();
    ASSERT_TRUE(started) << started.error().message;
    client_ = std::make_unique<httplib::Client>("127.0.0.1", config_.nodes[0].api_port);
    client_->set_read_timeout(std::chrono::seconds(40));
  }

  // node1 leads; node2 and node3 are standbys (node3 nofailover).
  void seed_store() {
    ASSERT_TRUE(store_.create(layout_.initialize(), "node1", std::nullopt));
    ASSERT_TRUE(store_.create(layout_.leader(), "node1", std::nullopt));
    put_member({.name = "node1",
                .state = PgState::kPrimary,
                .timeline = 1,
                .received_lsn = Lsn(0x3000000),
                .primary = PrimaryDetails{.slots = {{"node2", true, "reserved", 1024}}}});
    put_member({.name = "node2",
                .state = PgState::kStandby,
                .timeline = 1,
                .received_lsn = Lsn(0x3000000),
                .replayed_lsn = Lsn(0x3000000),
                .upstream = "node1"});
    put_member({.name = "node3",
                .state = PgState::kStandby,
                .timeline = 1,
                .received_lsn = Lsn(0x2000000),
                .replayed_lsn = Lsn(0x2000000),
                .upstream = "node1",
                .nofailover = true});
    ASSERT_TRUE(store_.put(
        layout_.history(1),
        encode_history(
            {.time_ms = 1, .to = "node1", .timeline = 1, .reason = "bootstrapped the cluster"}),
        std::nullopt));
  }

  void put_member(const MemberRecord& member) {
    ASSERT_TRUE(store_.put(layout_.member(member.name), encode_member(member), std::nullopt));
  }

  ClusterView view() { return layout_.view(store_.read(layout_.prefix()).value()); }

  void publish_leader_snapshot() {
    AgentSnapshot snapshot{.view = view(), .cycles = 5, .at = clock_.steady_now()};
    snapshot.node.state = PgState::kPrimary;
    snapshot.node.data_was_primary = true;
    snapshot.node.timeline = 1;
    snapshot.node.received_lsn = Lsn(0x3000000);
    snapshot.node.lease_renewed_at = clock_.steady_now();
    snapshot.lease_remaining = std::chrono::milliseconds(1000);
    board_.publish(snapshot, 1000);
  }

  // Everything a request could change: the whole store but the members' records.
  std::map<std::string, std::string> store_state() {
    std::map<std::string, std::string> state;
    StoreSnapshot snapshot = store_.read(layout_.prefix()).value();
    for (const auto& [key, stored] : snapshot.entries) {
      state[key] = stored.value + "@" + std::to_string(stored.mod_revision);
    }
    return state;
  }

  httplib::Result post(const std::string& path, const std::string& body,
                       const std::string& token = "s3cret") {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return client_->Post(path.c_str(), headers, body, "application/json");
  }

  std::string dir_;
  ClusterConfig config_;
  SystemClock clock_;
  MemoryStore store_{clock_};
  ClusterLayout layout_{"unit"};
  AgentBoard board_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

// Polls `done` every 20 ms for up to `timeout`.
inline bool eventually_true(const std::function<bool()>& done,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

}  // namespace tandem
