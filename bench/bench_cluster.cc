#include "bench/bench_cluster.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench/local_queries.h"
#include "local/local_cluster.h"
#include "proc/ports.h"
#include "proc/process_runner.h"

namespace tandem::bench {

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
  int base_port = find_free_ports("127.0.0.1", 2 * (standbys + 1)).value_or(0);
  config_ = local_config({.dir = dir_,
                          .standbys = standbys,
                          .base_port = base_port,
                          .api_base_port = base_port + standbys + 1});
  if (adjust) adjust(config_);
  std::ofstream(config_path_) << render_config(config_);
}

BenchCluster::~BenchCluster() {
  tandem({"local", "down"});
  if (std::getenv("TANDEM_BENCH_KEEP") != nullptr) return;  // to read the logs of a trial
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
  return query_value(config_, node, query);
}

void BenchCluster::exec(const std::string& node, const std::string& statements) const {
  if (auto connection = sql(node)) (void)connection->execute(statements);
}

std::string BenchCluster::current_primary() const { return writable_node(config_); }

bool BenchCluster::streams(const std::string& primary, const std::string& standby) const {
  return bench::streams(config_, primary, standby);
}

std::string BenchCluster::other_than(const std::string& a, const std::string& b) const {
  for (const NodeConfig& node : config_.nodes) {
    if (node.name != a && node.name != b) return node.name;
  }
  return "";
}

}  // namespace tandem::bench
