// A real local cluster for integration tests: a fresh directory, free ports, the tandem binary
// run as a person would run it, SQL through libpq. Everything it starts it stops.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/cluster_config.h"
#include "pg/connection.h"

namespace tandem::testing {

// The tandem binary the tests run (TANDEM_BINARY): this build's, unless TANDEM_TEST_BINARY names
// another — `make asan` runs the Release build's tests against the sanitized binary.
const char* tandem_binary();

struct CommandOutput {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

class LocalClusterTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Writes tandem.yaml for `standbys` standbys under dir_, with `adjust` applied, without
  // starting anything. Without agents unless asked: the walk-through is done by hand.
  void write_config(int standbys, const std::function<void(ClusterConfig&)>& adjust = {},
                    bool agents = false);
  // tandem -c <config> args...
  CommandOutput tandem(const std::vector<std::string>& args);
  // Like tandem(), failing the test unless it exits 0.
  std::string tandem_ok(const std::vector<std::string>& args);

  // A superuser connection to a node, over its Unix socket; fails the test when impossible.
  Connection sql(const std::string& node, const std::string& database = "test_app");
  Result<Connection> try_sql(const std::string& node, const std::string& database = "test_app");
  // The single value a query returns, or the error message prefixed with "ERROR: ".
  std::string value(const std::string& node, const std::string& query);

  // Runs statements (several allowed) and fails the test if they fail.
  void exec(const std::string& node, const std::string& statements);

  // Polls `done` every 50 ms for up to `timeout`.
  bool eventually(const std::function<bool()>& done,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));

  const NodeConfig& node(const std::string& name) const;

  // config_path_ as it is now (what `tandem adopt` wrote, say); fails the test, and returns
  // config_, when it cannot be read or parsed.
  ClusterConfig config_on_disk();

  std::string dir_;          // the cluster directory (tandem.yaml, data dirs, run/, log/)
  std::string config_path_;  // dir_/tandem.yaml
  ClusterConfig config_;
  int base_port_ = 0;
};

// The DBA's directory of a cluster built by hand: `path`, made and given to the postgres OS
// user, as the walk-through's are. Fails the current test if it cannot.
void make_postgres_dir(const std::string& path);
// Stops, as the postgres OS user (pg_ctl -m immediate), every server of `config` still running:
// the servers a test started by hand and tandem did not take over.
void stop_by_hand(const ClusterConfig& config, const std::string& dir);

// A shell command as the postgres OS user, run in `dir` (a cluster built by hand, the
// walk-through's way); fails the current test unless it exits 0 (or `may_fail`). Its output,
// or "" when it failed.
std::string run_as_postgres(const std::string& dir, const std::string& command,
                            bool may_fail = false);

// PostgreSQL's log, watched from its end when the watch begins for "received promote request":
// the moment the promoter's request reached the server (pg_promote() or pg_ctl promote), which
// then promotes on its own; a test freezes the promoter's agent on it.
class PromoteRequestWatch {
 public:
  explicit PromoteRequestWatch(std::string log_file);
  // True once the line is there, looking every half millisecond; false after `timeout`, or as
  // soon as `give_up` says so.
  bool wait(std::chrono::milliseconds timeout, const std::function<bool()>& give_up = {});

 private:
  std::string log_file_;
  std::uintmax_t from_ = 0;
};

// Ports [base, base + count) that nothing listens on.
int find_free_ports(int count);

}  // namespace tandem::testing
