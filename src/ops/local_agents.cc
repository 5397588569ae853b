#include "ops/local_agents.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>

#include "ops/status.h"
#include "proc/detached.h"

namespace tandem {
namespace {

std::string lock_path(const ClusterConfig& config, const NodeConfig& node) {
  return fmt::format("{}/{}.agent.lock", config.socket_dir, node.name);
}

}  // namespace

std::optional<pid_t> running_agent(const ClusterConfig& config, const NodeConfig& node) {
  std::string path = lock_path(config, node);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  // The agent holds the lock for its whole life: if we can take it, no agent runs.
  bool held = flock(fd, LOCK_SH | LOCK_NB) != 0;
  close(fd);
  if (!held) return std::nullopt;
  std::ifstream in(path);
  pid_t pid = 0;
  if (!(in >> pid) || pid <= 0) return std::nullopt;
  return pid;
}

Status start_agent(Context& context, const std::string& config_path, const NodeConfig& node) {
  if (running_agent(context.config, node)) return {};
  if (auto ok = ensure_owned_dir(context.config.socket_dir, context.os_user, 0755); !ok) return ok;
  if (auto ok = ensure_owned_dir(context.config.log_dir, context.os_user, 0755); !ok) return ok;
  std::string log = fmt::format("{}/{}.agent.log", context.config.log_dir, node.name);
  auto pid =
      spawn_detached(own_executable(), {"-c", config_path, "agent", "--node", node.name}, log);
  if (!pid) return std::unexpected(pid.error());
  // The agent takes its lock at once; waiting for it makes `start` then `stop` safe.
  bool locked = poll_until(context.clock, std::chrono::seconds(10), std::chrono::milliseconds(20),
                           [&] { return running_agent(context.config, node).has_value(); });
  if (!locked) {
    return fail(ErrorCode::kFailed,
                fmt::format("the agent of {} did not start (see {})", node.name, log));
  }
  context.report(fmt::format("started the agent of {} (pid {}, log {})", node.name, *pid, log));
  return {};
}

Status signal_agent(Context& context, const NodeConfig& node, int signal) {
  auto pid = running_agent(context.config, node);
  if (!pid) return {};
  if (kill(*pid, signal) != 0) {
    return fail(ErrorCode::kFailed,
                fmt::format("cannot signal the agent of {} (pid {})", node.name, *pid));
  }
  bool gone = poll_until(context.clock, std::chrono::seconds(90), std::chrono::milliseconds(20),
                         [&] { return !running_agent(context.config, node).has_value(); });
  if (!gone) {
    return fail(ErrorCode::kTimeout, fmt::format("the agent of {} did not exit", node.name));
  }
  return {};
}

Status wait_cluster_ready(Context& context, std::chrono::milliseconds timeout) {
  std::string waiting_for = "a primary";
  bool ready = poll_until(context.clock, timeout, std::chrono::milliseconds(200), [&] {
    ClusterReport report = collect_status(context);
    if (!report.primary) {
      waiting_for = "a primary";
      return false;
    }
    for (const NodeReport& node : report.nodes) {
      if (node.name == *report.primary) continue;
      if (node.role != NodeRole::kStandby || !node.replication ||
          node.replication->state != "streaming") {
        waiting_for = fmt::format("{} to stream from {}", node.name, *report.primary);
        return false;
      }
    }
    return true;
  });
  if (!ready) {
    return fail(ErrorCode::kTimeout,
                fmt::format("the cluster is not ready after {} s: still waiting for {}",
                            std::chrono::duration_cast<std::chrono::seconds>(timeout).count(),
                            waiting_for));
  }
  return {};
}

}  // namespace tandem
