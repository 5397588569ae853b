// Bad input gets one clear line, a non-zero exit, and changes nothing: the directories and the
// running servers are as they were before the command.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "local_cluster_fixture.h"
#include "proc/os_user.h"
#include "proc/process_runner.h"

namespace tandem::testing {
namespace {

// What must not change: every path under the cluster directory except the server logs and the
// servers' own files, and which node runs as what, with which postmaster.
struct Snapshot {
  std::set<std::string> top_level;
  std::map<std::string, std::string> servers;  // node -> "pid role"
  bool operator==(const Snapshot&) const = default;
};

class BadInputTest : public LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    write_config(2);
    // node1 primary, node2 standby; node3 stays uncreated for the commands to refuse.
    tandem_ok({"local", "up", "--dir", dir_});
    tandem_ok({"local", "stop", "node3"});
    std::filesystem::rename(node("node3").data_dir, dir_ + "/node3.parked");
  }

  Snapshot snapshot() {
    Snapshot snap;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      // The coordination store's file may appear with the first command that takes the
      // cluster's command lock (a key it removes again): no state of the cluster.
      std::string name = entry.path().filename().string();
      if (name.starts_with("store.db")) continue;
      snap.top_level.insert(name);
    }
    for (const NodeConfig& each : config_.nodes) {
      std::ifstream pid_file(each.data_dir + "/postmaster.pid");
      std::string pid = "stopped";
      pid_file >> pid;
      snap.servers[each.name] =
          pid + " " + value(each.name, "SELECT pg_is_in_recovery()::text AS v");
    }
    return snap;
  }

  // Runs tandem, expecting failure with one line on stderr that contains `says`.
  void expect_refused(const std::vector<std::string>& args, const std::string& says,
                      const std::string& config = "") {
    Snapshot before = snapshot();
    SystemProcessRunner runner;
    std::vector<std::string> with_config = {"-c", config.empty() ? config_path_ : config};
    with_config.insert(with_config.end(), args.begin(), args.end());
    auto result = runner.run({.program = TANDEM_BINARY, .args = with_config, .working_dir = dir_});
    ASSERT_TRUE(result);
    std::string command;
    for (const std::string& arg : args) command += " " + arg;
    EXPECT_EQ(result->exit_code, 1) << command << ":\n" << result->output;
    std::string error_line;
    for (std::size_t start = 0; start < result->output.size();) {
      std::size_t end = result->output.find('\n', start);
      std::string line = result->output.substr(start, end - start);
      if (line.rfind("tandem: error: ", 0) == 0) {
        EXPECT_TRUE(error_line.empty()) << "two error lines:" << result->output;
        error_line = line;
      }
      start = end == std::string::npos ? result->output.size() : end + 1;
    }
    EXPECT_NE(error_line.find(says), std::string::npos)
        << command << ": expected '" << says << "' in:\n"
        << result->output;
    EXPECT_EQ(snapshot(), before) << command << " changed something";
  }

  // A copy of the config with one line replaced, for inputs that only a config can express.
  std::string config_variant(const std::string& name, const std::string& from,
                             const std::string& to) {
    std::string text = read_file(config_path_).value();
    std::size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    std::string path = dir_ + "/" + name + ".yaml";
    std::ofstream(path) << text;
    return path;
  }
};

TEST_F(BadInputTest, EachIsRefusedAndChangesNothing) {
  {
    SCOPED_TRACE("an existing data directory");
    expect_refused({"init", "node1"}, "data directory " + node("node1").data_dir +
                                          " of node1 already exists and is not empty");
    std::filesystem::create_directories(node("node3").data_dir);
    std::ofstream(node("node3").data_dir + "/precious") << "user data";
    expect_refused({"clone", "node3"}, "already exists and is not empty");
    std::filesystem::remove_all(node("node3").data_dir);
  }
  {
    SCOPED_TRACE("a port in use");
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(node("node3").port));
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    ASSERT_EQ(listen(listener, 1), 0);
    expect_refused({"clone", "node3"}, "port 127.0.0.1:" + std::to_string(node("node3").port) +
                                           " of node3 is already in use");
    close(listener);
  }
  {
    SCOPED_TRACE("a server whose configuration PostgreSQL refuses");
    tandem_ok({"local", "stop", "node2"});
    std::string conf = node("node2").data_dir + "/postgresql.conf";
    std::string good = read_file(conf).value();
    std::ofstream(conf, std::ios::app) << "shared_buffers = 'lots'\n";
    // PostgreSQL's own reason, from what the postmaster wrote to its log before it exited.
    expect_refused({"local", "start", "node2"},
                   "node2 did not start: " /* the log line's time stamp, then */);
    expect_refused({"local", "start", "node2"},
                   "FATAL:  configuration file \"" + conf + "\" contains errors");
    std::ofstream(conf, std::ios::trunc) << good;
    tandem_ok({"local", "start", "node2"});
  }
  {
    SCOPED_TRACE("PostgreSQL binaries not found");
    std::string config =
        config_variant("nobin", "os_user: postgres", "os_user: postgres\npg_bin: /nonexistent/bin");
    expect_refused({"status"}, "PostgreSQL server programs not found", config);
    expect_refused({"status"}, "apt-get install postgresql-15", config);
  }
  {
    SCOPED_TRACE("the OS user is missing");
    std::string config = config_variant("nouser", "os_user: postgres", "os_user: nosuchuser");
    expect_refused({"status"}, "OS user 'nosuchuser' does not exist", config);
  }
  {
    SCOPED_TRACE("a wrong password");
    std::string passfile = read_file(config_.password_file).value();
    std::size_t at = passfile.find("replicator:") + 11;
    passfile.replace(at, 32, std::string(32, 'x'));
    std::ofstream(dir_ + "/wrong.pgpass") << passfile;
    std::filesystem::permissions(dir_ + "/wrong.pgpass", std::filesystem::perms::owner_read |
                                                             std::filesystem::perms::owner_write);
    std::string config = config_variant("wrongpass", "password_file: " + config_.password_file,
                                        "password_file: " + dir_ + "/wrong.pgpass");
    expect_refused({"clone", "node3"}, "refused the password of replicator", config);
  }
  {
    SCOPED_TRACE("an unreachable primary");
    int closed_port = find_free_ports(1);
    std::string config = config_variant("unreachable", "port: " + std::to_string(base_port_),
                                        "port: " + std::to_string(closed_port));
    expect_refused({"clone", "node3", "--from", "node1"}, "cannot reach the primary node1", config);
    expect_refused({"clone", "node3"}, "nothing to clone from: no primary is running", config);
  }
  {
    SCOPED_TRACE("an unknown node");
    expect_refused({"promote", "node9"}, "unknown node 'node9': this cluster has node1, node2");
    expect_refused({"rejoin", "node9"}, "unknown node 'node9'");
  }
  {
    SCOPED_TRACE("promoting the primary, or a standby while the primary runs");
    expect_refused({"promote", "node1"}, "node1 is already the primary");
    expect_refused({"promote", "node2"}, "node1 still runs as the primary");
  }
  {
    SCOPED_TRACE("a config that is not valid");
    std::string config = config_variant("typo", "replication:", "replicaton:");
    expect_refused({"status"}, "unknown key 'replicaton'", config);
  }
  {
    SCOPED_TRACE("rejoining a node that runs as primary while another primary exists");
    // Someone promoted node2 by hand: now two primaries run.
    SystemProcessRunner runner;
    auto promoted = runner.run({.program = "/usr/lib/postgresql/15/bin/pg_ctl",
                                .args = {"promote", "-w", "-D", node("node2").data_dir},
                                .run_as = "postgres"});
    ASSERT_TRUE(promoted && promoted->exit_code == 0);
    ASSERT_TRUE(eventually(
        [&] { return value("node2", "SELECT pg_is_in_recovery()::text AS v") == "false"; }));
    expect_refused({"rejoin", "node1"}, "node1 runs as a primary while node2 is the primary");
    expect_refused({"rejoin", "node2"}, "node2 runs as a primary while node1 is the primary");
    std::string status = tandem({"status"}).output;
    EXPECT_NE(status.find("2 nodes accept writes: split brain"), std::string::npos) << status;
  }
}

}  // namespace
}  // namespace tandem::testing
