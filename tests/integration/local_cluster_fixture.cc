#include "local_cluster_fixture.h"

#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "../support/log_tails.h"
#include "local/local_agents.h"
#include "local/local_cluster.h"
#include "pg/postmaster.h"
#include "proc/os_user.h"
#include "proc/ports.h"
#include "proc/process_runner.h"

namespace tandem::testing {

const char* tandem_binary() {
  static const std::string path = [] {
    const char* chosen = std::getenv("TANDEM_TEST_BINARY");
    return std::string(chosen != nullptr && *chosen != '\0' ? chosen : TANDEM_BUILT_BINARY);
  }();
  return path.c_str();
}

int find_free_ports(int count) {
  auto base = tandem::find_free_ports("127.0.0.1", count);
  if (!base) ADD_FAILURE() << "no free ports";
  return base.value_or(0);
}

void LocalClusterTest::SetUp() {
  char pattern[] = "/tmp/tandem-test-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  dir_ = pattern;
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);  // the postgres user must reach inside
  config_path_ = dir_ + "/tandem.yaml";
}

void LocalClusterTest::TearDown() {
  if (std::filesystem::exists(config_path_)) {
    CommandOutput down = tandem({"local", "down"});
    EXPECT_EQ(down.exit_code, 0) << "tandem local down:\n" << down.output;
  }
  // Whatever a failed test left running is killed, so nothing outlives the test.
  for (const NodeConfig& each : config_.nodes) {
    if (auto agent = running_agent(config_, each)) {
      ADD_FAILURE() << "the agent of " << each.name << " was still running after `local down`";
      kill(*agent, SIGKILL);
    }
    if (auto pid = running_postmaster(each.data_dir)) {
      ADD_FAILURE() << each.name << " was still running after `tandem local down`";
      kill(*pid, SIGKILL);
    }
  }
  if (!HasFailure() && std::getenv("TANDEM_TEST_KEEP") == nullptr) {
    std::error_code error;
    std::filesystem::remove_all(dir_, error);
  } else {
    testing::print_log_tails(dir_);
    std::cerr << "kept " << dir_ << " for inspection\n";
  }
}

void LocalClusterTest::write_config(int standbys, const std::function<void(ClusterConfig&)>& adjust,
                                    bool agents) {
  // PostgreSQL's ports, then the agents' API ports.
  base_port_ = find_free_ports(2 * (standbys + 1));
  config_ = local_config({.dir = dir_,
                          .standbys = standbys,
                          .base_port = base_port_,
                          .api_base_port = base_port_ + standbys + 1,
                          .agents = agents});
  if (adjust) adjust(config_);
  std::ofstream(config_path_) << render_config(config_);
}

CommandOutput LocalClusterTest::tandem(const std::vector<std::string>& args) {
  std::vector<std::string> full = {"-c", config_path_};
  full.insert(full.end(), args.begin(), args.end());
  SystemProcessRunner runner;
  auto result = runner.run({.program = TANDEM_BINARY,
                            .args = full,
                            .working_dir = dir_,
                            .timeout = std::chrono::minutes(3)});
  if (!result) {
    ADD_FAILURE() << "tandem did not run: " << result.error().message;
    return {};
  }
  return {result->exit_code, result->output};
}

std::string LocalClusterTest::tandem_ok(const std::vector<std::string>& args) {
  CommandOutput result = tandem(args);
  std::string command;
  for (const std::string& arg : args) command += " " + arg;
  EXPECT_EQ(result.exit_code, 0) << "tandem" << command << ":\n" << result.output;
  return result.output;
}

Result<Connection> LocalClusterTest::try_sql(const std::string& name, const std::string& database) {
  return Connection::open(make_conninfo({{"host", config_.socket_dir},
                                         {"port", std::to_string(node(name).port)},
                                         {"user", config_.superuser},
                                         {"dbname", database},
                                         {"connect_timeout", "3"}}));
}

Connection LocalClusterTest::sql(const std::string& name, const std::string& database) {
  auto connection = try_sql(name, database);
  if (!connection) {
    ADD_FAILURE() << "cannot connect to " << name << ": " << connection.error().message;
    std::abort();
  }
  return std::move(*connection);
}

std::string LocalClusterTest::value(const std::string& name, const std::string& query) {
  auto connection = try_sql(name);
  if (!connection) return "ERROR: " + connection.error().message;
  auto rows = connection->query(query);
  if (!rows) return "ERROR: " + rows.error().message;
  if (rows->empty()) return "";
  return rows->text(0, "v");
}

void LocalClusterTest::exec(const std::string& name, const std::string& statements) {
  auto connection = try_sql(name);
  ASSERT_TRUE(connection) << name << ": " << connection.error().message;
  auto ok = connection->execute(statements);
  EXPECT_TRUE(ok) << name << ": " << statements << ": " << (ok ? "" : ok.error().message);
}

ClusterConfig LocalClusterTest::config_on_disk() {
  auto text = read_file(config_path_);
  EXPECT_TRUE(text) << config_path_;
  auto parsed = parse_config(text.value_or(""), dir_);
  EXPECT_TRUE(parsed) << (parsed ? "" : parsed.error().message);
  return parsed.value_or(config_);
}

bool LocalClusterTest::eventually(const std::function<bool()>& done,
                                  std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

const NodeConfig& LocalClusterTest::node(const std::string& name) const {
  const NodeConfig* found = config_.find_node(name);
  if (found == nullptr) {
    ADD_FAILURE() << "no node " << name;
    std::abort();
  }
  return *found;
}

void make_postgres_dir(const std::string& path) {
  std::filesystem::create_directory(path);
  auto postgres = lookup_os_user("postgres");
  ASSERT_TRUE(postgres);
  ASSERT_EQ(chown(path.c_str(), postgres->uid, postgres->gid), 0);
}

void stop_by_hand(const ClusterConfig& config, const std::string& dir) {
  for (const NodeConfig& node : config.nodes) {
    if (running_postmaster(node.data_dir)) {
      run_as_postgres(
          dir, "/usr/lib/postgresql/15/bin/pg_ctl -D " + node.data_dir + " -m immediate -w stop");
    }
  }
}

std::string run_as_postgres(const std::string& dir, const std::string& command, bool may_fail) {
  SystemProcessRunner runner;
  auto result = runner.run({.program = "/bin/sh",
                            .args = {"-c", command},
                            .run_as = "postgres",
                            .working_dir = dir,
                            .timeout = std::chrono::minutes(2)});
  bool ok = result && result->exit_code == 0;
  if (!may_fail) {
    EXPECT_TRUE(ok) << command << ":\n" << (result ? result->output : result.error().message);
  }
  return ok ? result->output : "";
}

PromoteRequestWatch::PromoteRequestWatch(std::string log_file) : log_file_(std::move(log_file)) {
  std::error_code error;
  auto size = std::filesystem::file_size(log_file_, error);
  from_ = error ? 0 : size;
}

bool PromoteRequestWatch::wait(std::chrono::milliseconds timeout,
                               const std::function<bool()>& give_up) {
  constexpr std::string_view kLine = "received promote request";
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string seen;
  std::uintmax_t read_to = from_;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream file(log_file_, std::ios::binary);
    if (file) {
      file.seekg(static_cast<std::streamoff>(read_to));
      std::string added((std::istreambuf_iterator<char>(file)), {});
      read_to += added.size();
      // What was read before is kept from its last line on: the line may come in two pieces.
      auto line_start = seen.rfind('\n');
      seen = (line_start == std::string::npos ? seen : seen.substr(line_start + 1)) + added;
      if (seen.find(kLine) != std::string::npos) return true;
    }
    if (give_up && give_up()) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return false;
}

}  // namespace tandem::testing
