// A NodeController that runs nothing and records every call, for tests of what operations do
// (and do not do) to servers.
#pragma once

#include <string>
#include <vector>

#include "common/clock.h"
#include "pg/node_controller.h"

namespace tandem::testing {

class FakeNodeController final : public NodeController {
 public:
  std::vector<std::string> calls;  // "start node1", ...
  bool running = false;            // what is_running answers

  Status initdb(const NodeConfig& node) override { return record("initdb", node); }
  Status start(const NodeConfig& node) override { return record("start", node); }
  Status stop(const NodeConfig& node, StopMode) override { return record("stop", node); }
  Status promote(const NodeConfig& node) override { return record("promote", node); }
  Status reload(const NodeConfig& node) override { return record("reload", node); }
  Result<bool> is_running(const NodeConfig&) override { return running; }
  Status base_backup(const NodeConfig& node, const std::string&, const std::string&,
                     bool) override {
    return record("base_backup", node);
  }
  Result<RewindReport> rewind(const NodeConfig& node, const std::string&) override {
    record("rewind", node);
    return RewindReport{};
  }
  Result<ControlData> control_data(const NodeConfig& node) override {
    record("control_data", node);
    return ControlData{};
  }
  Status finish_crash_recovery(const NodeConfig& node) override {
    return record("finish_crash_recovery", node);
  }

 private:
  Status record(const std::string& what, const NodeConfig& node) {
    calls.push_back(what + " " + node.name);
    return {};
  }
};

// A clock whose time moves only when something sleeps on it.
class FakeClock final : public Clock {
 public:
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::time_point(elapsed_);
  }
  std::chrono::steady_clock::time_point steady_now() const override {
    return std::chrono::steady_clock::time_point(elapsed_);
  }
  void sleep_for(std::chrono::milliseconds duration) override { elapsed_ += duration; }

 private:
  std::chrono::milliseconds elapsed_{0};
};

}  // namespace tandem::testing
