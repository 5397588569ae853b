// What every cluster operation works with: the config, the OS user that owns PostgreSQL, the
// node controller, the clock, and a sink for the steps it reports to the person.
#pragma once

#include <functional>
#include <string>

#include "common/clock.h"
#include "core/cluster_config.h"
#include "pg/node_controller.h"
#include "proc/os_user.h"
#include "proc/process_runner.h"

namespace tandem {

struct Context {
  const ClusterConfig& config;
  OsUser os_user;
  NodeController& controller;
  Clock& clock;
  // Runs the programs that are not PostgreSQL's (pgBackRest); nullptr where none is needed.
  ProcessRunner* runner = nullptr;
  // Called with one line per step taken ("started node2 as a standby of node1").
  std::function<void(const std::string&)> report = [](const std::string&) {};
  // How long a new standby may take to stream after it started.
  std::chrono::milliseconds streaming_timeout{std::chrono::seconds(60)};
  // How long a running standby pointed at a new primary may take to stream from it; one that
  // cannot (it replayed past the new primary's fork) needs a rejoin.
  std::chrono::milliseconds follow_timeout{std::chrono::seconds(15)};
};

}  // namespace tandem
