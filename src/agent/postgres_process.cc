#include "agent/postgres_process.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace tandem {

PostgresProcess::~PostgresProcess() {
  if (pidfd_ >= 0) close(pidfd_);
}

void PostgresProcess::forget() {
  if (pidfd_ >= 0) close(pidfd_);
  pidfd_ = -1;
  pid_ = -1;
}

Status PostgresProcess::spawn(const NodeConfig& node) {
  if (pid_ > 0) return fail(ErrorCode::kConflict, "PostgreSQL already runs as this agent's child");
  auto pid = spawn_postmaster(binaries_.path("postgres"), node.data_dir, log_file_, os_user_,
                              /*die_with_caller=*/true);
  if (!pid) return std::unexpected(pid.error());
  pid_ = *pid;
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  return {};
}

void PostgresProcess::adopt(pid_t pid) {
  if (pid <= 0) return;
  pid_ = pid;
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

bool PostgresProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t reaped = waitpid(pid_, &status, WNOHANG);
  if (reaped == 0) return true;
  forget();
  return false;
}

Status PostgresProcess::stop(bool immediate, std::chrono::milliseconds timeout) {
  if (!running()) return {};
  kill(pid_, immediate ? SIGQUIT : SIGINT);
  // The deadline is the Clock's; the wait itself sleeps on the pidfd, so the exit ends it at once.
  auto deadline = clock_.steady_now() + timeout;
  for (auto now = clock_.steady_now(); now < deadline; now = clock_.steady_now()) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    pollfd entry{pidfd_, POLLIN, 0};
    poll(&entry, 1, static_cast<int>(std::min<std::int64_t>(50, left.count())));
    if (!running()) return {};
  }
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  forget();
  return fail(ErrorCode::kTimeout,
              fmt::format("PostgreSQL did not stop within {} ms and was killed", timeout.count()));
}

}  // namespace tandem
