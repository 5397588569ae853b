#include "bench/bench_cluster.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "bench/write_probe.h"
#include "ops/local_cluster.h"
#include "proc/ports.h"
#include "proc/process_runner.h"

namespace tandem::bench {
namespace {

int free_ports(int count) {
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> pick(20000, 60000);
  while (true) {
    int base = pick(random);
    bool free = true;
    for (int port = base; port < base + count && free; ++port) {
      free = !port_in_use("127.0.0.1", port);
    }
    if (free) return base;
  }
}

}  // namespace

bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

BenchCluster::BenchCluster(std::string tandem_binary, int standbys,
                           const std::function<void(ClusterConfig&)>& adjust)
    : tandem_binary_(std::move(tandem_binary)) {
  char pattern[] = "/tmp/tandem-bench-XXXXXX";
  dir_ = mkdtemp(pattern);
  chmod(dir_.c_str(), 0755);
  config_path_ = dir_ + "/tandem.yaml";
  config_ =
      local_config({.dir = dir_, .standbys = standbys, .base_port = free_ports(standbys + 1)});
  if (adjust) adjust(config_);
  std::ofstream(config_path_) << render_config(config_);
}

BenchCluster::~BenchCluster() {
  tandem({"local", "down"});
  std::error_code error;
  std::filesystem::remove_all(dir_, error);
}

CommandOutput BenchCluster::tandem(const std::vector<std::string>& args) const {
  std::vector<std::string> full = {"-c", config_path_};
  full.insert(full.end(), args.begin(), args.end());
  SystemProcessRunner runner;
  auto result = runner.run({.program = tandem_binary_,
                            .args = full,
                            .working_dir = dir_,
                            .timeout = std::chrono::minutes(30)});
  if (!result) return {-1, result.error().message};
  return {result->exit_code, result->output};
}

Status BenchCluster::tandem_ok(const std::vector<std::string>& args) const {
  CommandOutput result = tandem(args);
  if (result.exit_code == 0) return {};
  return fail(ErrorCode::kFailed,
              fmt::format("tandem {} failed: {}", fmt::join(args, " "), result.output));
}

std::string BenchCluster::conninfo(const std::string& node) const {
  return node_conninfo(config_, node);
}

std::string BenchCluster::any_primary_conninfo() const {
  return bench::any_primary_conninfo(config_);
}

Result<Connection> BenchCluster::sql(const std::string& node, const std::string& database) const {
  return Connection::open(make_conninfo({{"host", config_.socket_dir},
                                         {"port", std::to_string(config_.find_node(node)->port)},
                                         {"user", config_.superuser},
                                         {"dbname", database},
                                         {"connect_timeout", "1"}}));
}

std::optional<std::string> BenchCluster::value(const std::string& node,
                                               const std::string& query) const {
  auto connection = sql(node);
  if (!connection) return std::nullopt;
  auto rows = connection->query(query);
  if (!rows || rows->empty()) return std::nullopt;
  return rows->get(0, "v");
}

void BenchCluster::exec(const std::string& node, const std::string& statements) const {
  if (auto connection = sql(node)) (void)connection->execute(statements);
}

std::string BenchCluster::current_primary() const {
  std::string primary;
  for (const NodeConfig& node : config_.nodes) {
    if (value(node.name, "SELECT (NOT pg_is_in_recovery())::text AS v") == "true") {
      if (!primary.empty()) return "";
      primary = node.name;
    }
  }
  return primary;
}

bool BenchCluster::streams(const std::string& primary, const std::string& standby) const {
  return value(primary, "SELECT state AS v FROM pg_stat_replication WHERE application_name = '" +
                            standby + "'") == "streaming";
}

std::string BenchCluster::other_than(const std::string& a, const std::string& b) const {
  for (const NodeConfig& node : config_.nodes) {
    if (node.name != a && node.name != b) return node.name;
  }
  return "";
}

}  // namespace tandem::bench
