#include "agent/postgres_process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>

#include "proc/safe_file.h"

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
  // The log directory belongs to the OS user: a link planted at the log is refused, not followed.
  auto opened = open_file_nofollow(log_file_, O_WRONLY | O_CREAT | O_APPEND, 0640);
  if (!opened) return fail_with_context(opened.error(), "PostgreSQL's log");
  int log = opened->release();
  if (running_as_root() && fchown(log, os_user_.uid, os_user_.gid) != 0) {
    close(log);
    return fail(ErrorCode::kFailed,
                fmt::format("cannot give {} to {}: {}", log_file_, os_user_.name, strerror(errno)));
  }
  std::string program = binaries_.path("postgres");
  std::string data_dir = node.data_dir;
  std::string home = "HOME=" + os_user_.home;
  char* argv[] = {program.data(), const_cast<char*>("-D"), data_dir.data(), nullptr};
  char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), const_cast<char*>("LANG=C.UTF-8"),
                  home.data(), nullptr};
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log);
    return fail(ErrorCode::kFailed, fmt::format("fork: {}", strerror(errno)));
  }
  if (pid == 0) {
    setsid();  // no terminal signals: only the agent decides when it stops
    int input = open("/dev/null", O_RDONLY);
    dup2(input, STDIN_FILENO);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    close_range(3, ~0U, 0);
    if (running_as_root() && !become_os_user(os_user_)) _exit(126);
    // After setuid, which clears it. If the agent is already gone, do not start at all.
    prctl(PR_SET_PDEATHSIG, SIGQUIT);
    if (getppid() != parent) _exit(125);
    execve(program.c_str(), argv, envp);
    _exit(127);
  }
  close(log);
  pid_ = pid;
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
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
