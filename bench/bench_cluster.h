// A local cluster for the benchmarks, driven through the tandem binary as a person would.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/cluster_config.h"
#include "pg/connection.h"

namespace tandem::bench {

struct CommandOutput {
  int exit_code = -1;
  std::string output;
};

class BenchCluster {
 public:
  // A fresh directory under /tmp and free ports; nothing runs yet.
  BenchCluster(std::string tandem_binary, int standbys,
               const std::function<void(ClusterConfig&)>& adjust = {});
  ~BenchCluster();  // stops everything it started and removes its directory

  CommandOutput tandem(const std::vector<std::string>& args) const;
  // Like tandem(), failing (with the output) unless it exits 0.
  Status tandem_ok(const std::vector<std::string>& args) const;

  Result<Connection> sql(const std::string& node, const std::string& database = "test_app") const;
  // The single value of a query, or nullopt on any error.
  std::optional<std::string> value(const std::string& node, const std::string& query) const;
  void exec(const std::string& node, const std::string& statements) const;

  std::string conninfo(const std::string& node) const;
  // Every node, target_session_attrs=read-write: what clients use to find the primary.
  std::string any_primary_conninfo() const;
  std::string current_primary() const;  // "" when none or several
  bool streams(const std::string& primary, const std::string& standby) const;
  std::string other_than(const std::string& a, const std::string& b = "") const;

  const ClusterConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string tandem_binary_;
  std::string dir_;
  std::string config_path_;
  ClusterConfig config_;
};


// Polls `done` every 10 ms for up to `timeout`.
bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout);

}  // namespace tandem::bench
