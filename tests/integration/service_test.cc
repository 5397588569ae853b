// The agent as a systemd service (Type=notify, examples/tandem@.service): READY once its node's
// record is published (before its first step, which may be a long copy), STATUS lines as it works,
// STOPPING at SIGTERM before a clean stop. A stand-in for systemd's notify socket receives what the
// real one would.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../support/child_process.h"
#include "../support/notify_socket.h"
#include "common/clock.h"
#include "dcs/cluster_layout.h"
#include "dcs/sqlite_store.h"
#include "local_cluster_fixture.h"
#include "pg/postmaster.h"

namespace tandem::testing {
namespace {

using std::chrono::steady_clock;

class ServiceTest : public LocalClusterTest {};

TEST_F(ServiceTest, TheAgentSaysReadyOnceItsRecordIsPublishedReloadsAtSighupAndStopsAtSigterm) {
  write_config(1, {}, /*agents=*/true);
  NotifySocket notify(dir_ + "/notify.sock");
  ChildProcess agent({.program = TANDEM_BINARY,
                      .args = {"-c", config_path_, "agent", "--node", "node1"},
                      .env = {{"NOTIFY_SOCKET", dir_ + "/notify.sock"}},
                      .log_file = dir_ + "/service-agent.log"});

  // The first word is READY (no status before it), once node1's record is in the store.
  std::vector<std::string> first = notify.until("READY=1", std::chrono::seconds(90));
  ASSERT_FALSE(first.empty()) << "no word from the agent in 90 s";
  ASSERT_EQ(first.size(), 1u) << "before READY: " << first.front();
  EXPECT_EQ(first.front().rfind("READY=1\nSTATUS=", 0), 0u) << first.front();
  SystemClock clock;
  auto store = SqliteStore::open(config_.store_file, clock);
  ASSERT_TRUE(store);
  ClusterLayout layout(config_.name);
  auto member = (*store)->read(layout.member("node1"));
  ASSERT_TRUE(member);
  EXPECT_EQ(member->entries.size(), 1u) << "READY before node1's record was published";

  // READY came before the first step (here the bootstrap); then PostgreSQL runs.
  ASSERT_TRUE(eventually([&] { return running_postmaster(node("node1").data_dir).has_value(); },
                         std::chrono::seconds(60)))
      << "node1's PostgreSQL never ran";
  // SIGHUP (systemctl reload): tandem.yaml read again, PostgreSQL and the lease untouched.
  auto log_has = [&](const std::string& text) {
    return eventually(
        [&] {
          std::ifstream log(dir_ + "/service-agent.log");
          std::stringstream content;
          content << log.rdbuf();
          return content.str().find(text) != std::string::npos;
        },
        std::chrono::seconds(10));
  };
  auto postmaster = running_postmaster(node("node1").data_dir);
  ASSERT_TRUE(postmaster);
  // A file with an error: refused, the running config kept.
  std::ofstream(config_path_) << "nodes: [this is not a config\n";
  ASSERT_EQ(kill(agent.pid(), SIGHUP), 0);
  EXPECT_TRUE(log_has("reload refused, the running config kept:"));
  // A setting the cycle reads applies at once; one its lease was made with waits for a restart.
  ClusterConfig changed = config_;
  changed.ha.maximum_lag_on_failover = 1 << 20;
  changed.ha.ttl = std::chrono::milliseconds(2000);
  std::ofstream(config_path_) << render_config(changed);
  EXPECT_NE(tandem_ok({"reload"}).find("node1"), std::string::npos);
  EXPECT_TRUE(
      log_has("reload: applied ha.maximum_lag_on_failover 16MB -> 1MB; changed but "
              "kept until the agent restarts: ha.ttl"));
  EXPECT_TRUE(agent.running()) << "SIGHUP ended the agent";
  EXPECT_EQ(running_postmaster(node("node1").data_dir), postmaster) << "PostgreSQL restarted";
  std::ofstream(config_path_) << render_config(config_);

  // SIGTERM (systemctl stop): STOPPING first, then a clean stop of PostgreSQL and the agent.
  ASSERT_EQ(kill(agent.pid(), SIGTERM), 0);
  std::vector<std::string> last = notify.until("STOPPING=1", std::chrono::seconds(30));
  ASSERT_FALSE(last.empty());
  EXPECT_NE(last.back().find("STOPPING=1"), std::string::npos) << last.back();
  EXPECT_TRUE(eventually([&] { return !agent.running(); }, std::chrono::seconds(60)))
      << "the agent did not exit after SIGTERM";
  EXPECT_FALSE(running_postmaster(node("node1").data_dir)) << "PostgreSQL outlived its agent";
}

// examples/tandem@.service, pointed at this build's binary, is a unit systemd accepts as it is.
TEST(ServiceUnit, TheExampleUnitIsOneSystemdAccepts) {
  std::ifstream in(std::string(TANDEM_SOURCE_DIR) + "/examples/tandem@.service");
  std::stringstream text;
  text << in.rdbuf();
  std::string unit = text.str();
  for (const char* line : {"Type=notify\n", "NotifyAccess=main\n",
                           "ExecStart=/usr/bin/tandem agent --node %i\n", "KillMode=mixed\n"}) {
    EXPECT_NE(unit.find(line), std::string::npos) << "the unit lacks " << line;
  }
  unit.replace(unit.find("/usr/bin/tandem"), std::string("/usr/bin/tandem").size(), TANDEM_BINARY);
  char pattern[] = "/tmp/tandem-unit-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  std::string dir = pattern;
  std::ofstream(dir + "/tandem@node1.service") << unit;
  std::string command = "cd " + dir + " && systemd-analyze verify ./tandem@node1.service 2>&1";
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[512];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  int status = pclose(pipe);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(status, 0) << "systemd-analyze verify (from Debian's systemd package):\n" << output;
  EXPECT_EQ(output, "");
}

}  // namespace
}  // namespace tandem::testing
