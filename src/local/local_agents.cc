#include "local/local_agents.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "ops/status.h"
#include "proc/detached.h"
#include "proc/safe_file.h"

namespace tandem {
namespace {

std::string lock_path(const ClusterConfig& config, const NodeConfig& node) {
  return fmt::format("{}/{}.agent.lock", config.socket_dir, node.name);
}

}  // namespace

namespace {

std::vector<std::string> command_line(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/cmdline", pid), std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return args;
}

// The process holds an open descriptor on the lock file itself (same inode).
bool holds_file(pid_t pid, const struct stat& lock) {
  std::error_code error;
  std::filesystem::directory_iterator fds(fmt::format("/proc/{}/fd", pid), error);
  if (error) return false;
  for (const auto& entry : fds) {
    struct stat info {};
    if (stat(entry.path().c_str(), &info) == 0 && info.st_dev == lock.st_dev &&
        info.st_ino == lock.st_ino) {
      return true;
    }
  }
  return false;
}

// True when `pid` is node's agent: its command line is `... agent --node NAME` and it holds the
// lock. The lock file sits in a directory the OS user can write, so its pid alone proves nothing.
bool is_agent_of(pid_t pid, const NodeConfig& node, const struct stat& lock) {
  std::vector<std::string> args = command_line(pid);
  bool named = false;
  for (std::size_t i = 0; i + 2 < args.size() && !named; ++i) {
    named = args[i] == "agent" && args[i + 1] == "--node" && args[i + 2] == node.name;
  }
  return named && holds_file(pid, lock);
}

}  // namespace

Result<std::optional<pid_t>> find_agent(const ClusterConfig& config, const NodeConfig& node) {
  std::string path = lock_path(config, node);
  auto opened = open_file_nofollow(path, O_RDONLY);
  if (!opened) {
    if (opened.error().code == ErrorCode::kPermissionDenied) return std::unexpected(opened.error());
    return std::optional<pid_t>();
  }
  // The agent holds the lock for its whole life: if we can take it, no agent runs.
  if (flock(opened->get(), LOCK_SH | LOCK_NB) == 0) return std::optional<pid_t>();
  struct stat lock {};
  char text[32] = {};
  if (fstat(opened->get(), &lock) != 0 || read(opened->get(), text, sizeof(text) - 1) < 0) {
    return fail(ErrorCode::kFailed, fmt::format("cannot read {}", path));
  }
  pid_t pid = static_cast<pid_t>(std::atol(text));
  if (pid <= 0 || !is_agent_of(pid, node, lock)) {
    return fail(ErrorCode::kPermissionDenied,
                fmt::format("{} names pid {}, which is not the agent of {} (not `tandem agent "
                            "--node {}` holding that lock): refusing to signal it",
                            path, pid, node.name, node.name));
  }
  return std::optional<pid_t>(pid);
}

std::optional<pid_t> running_agent(const ClusterConfig& config, const NodeConfig& node) {
  return find_agent(config, node).value_or(std::nullopt);
}

Result<int> lock_agent(const ClusterConfig& config, const NodeConfig& node, Clock& clock,
                       std::chrono::milliseconds patience) {
  std::string path = lock_path(config, node);
  // The socket directory belongs to the OS user: a link planted there is refused, so root
  // never truncates and writes a file of that user's choice.
  auto opened = open_file_nofollow(path, O_RDWR | O_CREAT, 0644);
  if (!opened) return std::unexpected(opened.error());
  bool locked = poll_until(clock, patience, std::chrono::milliseconds(5),
                           [&] { return flock(opened->get(), LOCK_EX | LOCK_NB) == 0; });
  if (!locked)
    return fail(ErrorCode::kConflict, fmt::format("an agent of {} already runs", node.name));
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(opened->get(), 0) != 0 || write(opened->get(), pid.data(), pid.size()) < 0) {
    return fail(ErrorCode::kFailed, fmt::format("cannot write {}", path));
  }
  return opened->release();
}

Status kill_agent(const ClusterConfig& config, const NodeConfig& node, int signal) {
  auto found = find_agent(config, node);
  if (!found) return std::unexpected(found.error());
  if (!*found) return {};
  pid_t pid = **found;
  // A pidfd pins the process: verified again after it is taken, the pid cannot be reused in
  // between.
  Fd process(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (process.get() < 0) return {};
  auto again = find_agent(config, node);
  if (!again) return std::unexpected(again.error());
  if (*again != pid) return {};
  if (syscall(SYS_pidfd_send_signal, process.get(), signal, nullptr, 0) != 0 && errno != ESRCH) {
    return fail(ErrorCode::kFailed, fmt::format("cannot signal the agent of {} (pid {}): {}",
                                                node.name, pid, strerror(errno)));
  }
  return {};
}

Status start_agent(Context& context, const std::string& config_path, const NodeConfig& node) {
  auto running = find_agent(context.config, node);
  if (!running) return fail_with_context(running.error(), "cannot start the agent of " + node.name);
  if (*running) return {};
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
  auto pid = find_agent(context.config, node);
  if (!pid) return std::unexpected(pid.error());
  if (!*pid) return {};
  if (auto ok = kill_agent(context.config, node, signal); !ok) return ok;
  bool gone = poll_until(context.clock, std::chrono::seconds(90), std::chrono::milliseconds(20),
                         [&] { return !running_agent(context.config, node).has_value(); });
  if (!gone) {
    return fail(ErrorCode::kTimeout, fmt::format("the agent of {} did not exit", node.name));
  }
  return {};
}

Status wait_cluster_ready(Context& context, std::chrono::milliseconds timeout, bool primary_only) {
  std::string waiting_for = "a primary";
  bool ready = poll_until(context.clock, timeout, std::chrono::milliseconds(200), [&] {
    ClusterReport report = collect_status(context);
    if (!report.primary) {
      waiting_for = "a primary";
      return false;
    }
    if (primary_only) return true;
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
