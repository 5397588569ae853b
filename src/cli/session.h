// What a command needs once its arguments are parsed: the loaded config, the OS user, the
// PostgreSQL programs, a node controller and a Context that prints each step.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "ops/context.h"
#include "pg/node_controller.h"
#include "pg/pg_binaries.h"
#include "proc/process_runner.h"

namespace tandem {

// Options every command shares.
struct GlobalOptions {
  std::string config_path;  // empty: $TANDEM_CONFIG, ./tandem.yaml, ./tandem-local/tandem.yaml
  bool verbose = false;
};

class Session {
 public:
  // Loads and validates the config, finds the OS user and the PostgreSQL programs.
  static Result<std::unique_ptr<Session>> open(const GlobalOptions& options);
  // Like open() for a config already in hand (tandem local up writes its own).
  static Result<std::unique_ptr<Session>> open(ClusterConfig config, std::string config_path);

  Context& context() { return *context_; }
  // The config file this session read (or, for a config in hand, the one it was written to).
  const std::string& config_path() const { return config_path_; }
  const ClusterConfig& config() const { return config_; }
  // What the Context's operations run with, for a command that builds more than the Context
  // (the agent): one clock, one process runner and the PostgreSQL programs, found once.
  Clock& clock() { return clock_; }
  ProcessRunner& runner() { return runner_; }
  const PgBinaries& binaries() const { return binaries_; }

 private:
  explicit Session(ClusterConfig config) : config_(std::move(config)) {}
  void take_member_list();

  ClusterConfig config_;
  std::string config_path_;
  SystemProcessRunner runner_;
  SystemClock clock_;
  PgBinaries binaries_;
  std::unique_ptr<PgNodeController> controller_;
  std::unique_ptr<Context> context_;
};

// Where the config is: the option, else $TANDEM_CONFIG, else the first of ./tandem.yaml and
// ./tandem-local/tandem.yaml that exists.
Result<std::string> resolve_config_path(const std::string& option);
Result<ClusterConfig> load_config_file(const std::string& path);

// Prints a step of an operation for the person: "  - started node2".
void print_step(const std::string& line);

}  // namespace tandem
