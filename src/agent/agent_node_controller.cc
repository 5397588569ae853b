#include "agent/agent_node_controller.h"

#include <fmt/format.h>
#include <libpq-fe.h>

#include "pg/admin_connection.h"

namespace tandem {

Status AgentNodeController::check_self(const NodeConfig& node) const {
  if (node.name == self_) return {};
  return fail(ErrorCode::kInvalidArgument,
              fmt::format("the agent of {} does not start or stop {}", self_, node.name));
}

Status AgentNodeController::spawn(const NodeConfig& node) {
  if (auto ok = check_self(node); !ok) return ok;
  if (process_.running()) return {};
  if (running_postmaster(node.data_dir)) {
    // Started by someone else (tandem local start, pg_ctl): it would not die with this agent,
    // so it cannot be trusted to stop when the agent does. Restart it as our child.
    if (auto ok = programs_.stop(node, StopMode::kFast); !ok) return ok;
  }
  return process_.spawn(node);
}

Status AgentNodeController::start(const NodeConfig& node) {
  if (auto ok = spawn(node); !ok) return ok;
  std::string conninfo = local_admin_conninfo(config_, node);
  bool exited = false;
  bool accepting = poll_until(clock_, std::chrono::seconds(60), std::chrono::milliseconds(20), [&] {
    exited = !process_.running();
    return exited || PQping(conninfo.c_str()) == PQPING_OK;
  });
  if (exited) {
    return fail(ErrorCode::kFailed, fmt::format("{} exited while starting (see {}/{}.log)",
                                                node.name, config_.log_dir, node.name));
  }
  if (accepting) return {};
  return fail(ErrorCode::kTimeout, fmt::format("{} did not accept connections in 60 s", node.name));
}

Status AgentNodeController::stop(const NodeConfig& node, StopMode mode) {
  if (auto ok = check_self(node); !ok) return ok;
  if (!process_.running() && running_postmaster(node.data_dir)) {
    return programs_.stop(node, mode);
  }
  return process_.stop(mode == StopMode::kImmediate, std::chrono::seconds(60));
}

Result<bool> AgentNodeController::is_running(const NodeConfig& node) {
  if (node.name != self_) return programs_.is_running(node);
  return process_.running() || running_postmaster(node.data_dir).has_value();
}

}  // namespace tandem
