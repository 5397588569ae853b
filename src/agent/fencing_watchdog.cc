#include "agent/fencing_watchdog.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

namespace tandem {
namespace {

constexpr int kSharedFd = 3;   // where tandem-watchdog finds the shared page (src/watchdog)
constexpr int kProgramFd = 4;  // the program, opened and checked before the fork

Result<int> shared_memory_file() {
  int fd = static_cast<int>(syscall(SYS_memfd_create, "tandem-watchdog", MFD_CLOEXEC));
  if (fd < 0) return fail(ErrorCode::kFailed, std::string("watchdog: memfd: ") + strerror(errno));
  if (ftruncate(fd, sizeof(WatchdogShared)) != 0) {
    int error = errno;
    close(fd);
    return fail(ErrorCode::kFailed, std::string("watchdog: ftruncate: ") + strerror(error));
  }
  return fd;
}

// Why a file may not be run as the watchdog's program: not a regular executable file, or
// set-user-ID or set-group-ID (PR_SET_PDEATHSIG would not survive that exec), or writable by
// others than `owner`, who must own it.
std::optional<std::string> unfit_program(const struct stat& file, uid_t owner) {
  if (!S_ISREG(file.st_mode) || (file.st_mode & S_IXUSR) == 0) return "not an executable file";
  if ((file.st_mode & (S_ISUID | S_ISGID)) != 0) return "set-user-ID or set-group-ID";
  if (file.st_uid != owner || (file.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return "may be written by others than its owner";
  }
  return std::nullopt;
}

// The program, opened without following a link and checked on the descriptor that is then
// exec'd (execveat): whatever happens to its path after the check, the file checked runs. It
// must be fit (unfit_program) and owned by root or by this process's user.
Result<int> open_program(const std::string& program) {
  int fd = open(program.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return fail(ErrorCode::kNotFound, program + ": " + strerror(errno));
  struct stat file {};
  std::string why;
  if (fstat(fd, &file) != 0) {
    why = strerror(errno);
  } else if (auto unfit = unfit_program(file, file.st_uid == 0 ? 0 : geteuid())) {
    why = *unfit;
  }
  if (why.empty()) return fd;
  close(fd);
  return fail(ErrorCode::kPermissionDenied, program + ": " + why);
}

// Moves `fd` to `to` in the child of a fork (async-signal-safe), by way of a high number so that
// the two moves never close each other's source.
bool move_fd(int fd, int to, int by_way_of) {
  int high = fcntl(fd, F_DUPFD, by_way_of);
  return high >= 0 && dup2(high, to) == to;
}

// In the child of the fork: only async-signal-safe calls. The shared page goes to fd 3, the
// program to fd 4 (closed by its own exec), every other descriptor but the standard three is
// closed, and the checked program replaces the fork; if it cannot, this returns and the fork
// runs the loop itself.
void exec_program(int memory, int program, char* const argv[]) {
  if (!move_fd(memory, kSharedFd + 100, 100) || !move_fd(program, kProgramFd + 100, 200) ||
      dup2(kSharedFd + 100, kSharedFd) != kSharedFd ||
      dup2(kProgramFd + 100, kProgramFd) != kProgramFd ||
      fcntl(kProgramFd, F_SETFD, FD_CLOEXEC) != 0) {
    return;
  }
  if (syscall(SYS_close_range, kProgramFd + 1, ~0U, 0) != 0) {
    for (int fd = kProgramFd + 1; fd < 4096; ++fd) close(fd);  // a kernel before 5.9
  }
  execveat(kProgramFd, "", argv, environ, AT_EMPTY_PATH);
}

// The watchdog ignores the signals meant for the agent: its terminal's Ctrl-C or Ctrl-\, a
// signal to the agent's process group, a service manager's SIGTERM to every process of the
// unit. The agent stops it (SIGKILL), and it dies with the agent (PR_SET_PDEATHSIG). In a
// session of its own, a terminal's hang-up does not reach it either.
void ignore_the_agents_signals() {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP})
    sigaction(signal, &ignore, nullptr);
  setsid();
}

// What became of a child, from its wait status.
std::string exit_description(int status) {
  return WIFEXITED(status) ? "it exited with status " + std::to_string(WEXITSTATUS(status))
                           : "it was killed by signal " + std::to_string(WTERMSIG(status));
}

// Waits (a second at most) until the child says its loop runs; false if it exited or never did.
bool loop_runs(const WatchdogShared& shared, pid_t child, std::string& why) {
  for (int waited = 0; waited < 1000; ++waited) {
    if (shared.running.load() == child) return true;
    int status = 0;
    if (waitpid(child, &status, WNOHANG) == child) {
      why = exit_description(status);
      return false;
    }
    usleep(1000);
  }
  why = "its loop did not start within a second";
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  return false;
}

}  // namespace

Result<std::unique_ptr<FencingWatchdog>> FencingWatchdog::start(std::chrono::milliseconds deadline,
                                                                bool fast_first,
                                                                const std::string& program) {
  auto fd = shared_memory_file();
  if (!fd) return std::unexpected(fd.error());
  void* memory = mmap(nullptr, sizeof(WatchdogShared), PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
  if (memory == MAP_FAILED) {
    int error = errno;
    close(*fd);
    return fail(ErrorCode::kFailed, std::string("watchdog: mmap: ") + strerror(error));
  }
  auto* shared = new (memory) WatchdogShared{};
  shared->layout = kWatchdogLayout;
  shared->confirmed_ns = boottime_ns();
  auto watchdog = std::unique_ptr<FencingWatchdog>(
      new FencingWatchdog(shared, *fd, deadline, fast_first, program));
  if (auto spawned = watchdog->spawn(); !spawned) return std::unexpected(spawned.error());
  return watchdog;
}

// Forks the loop's process on the shared page: the program exec'd, or, if it cannot be opened,
// will not run or exits at once, the loop run by the fork itself. Only async-signal-safe calls
// in the child, so a restart from the agent's threads is as safe as the first start.
Status FencingWatchdog::spawn(bool use_program) {
  int executable = -1;
  std::string fallback;
  if (use_program && !program_.empty()) {
    auto opened = open_program(program_);
    if (opened) {
      executable = *opened;
    } else {
      fallback = opened.error().message;
    }
  }
  shared_->running = 0;
  pid_t parent = getpid();
  // Its arguments made before the fork: the child allocates nothing.
  std::string deadline_text = std::to_string(deadline_.count());
  std::string parent_text = std::to_string(parent);
  std::string mode = fast_first_ ? "fast" : "immediate";
  std::string name = "tandem-watchdog";
  char* const argv[] = {name.data(), deadline_text.data(), mode.data(), parent_text.data(),
                        nullptr};
  int memory = memory_fd_;
  WatchdogShared* shared = shared_;
  long deadline_ms = deadline_.count();
  bool fast_first = fast_first_;
  pid_t child = fork();
  if (child < 0) {
    int error = errno;
    if (executable >= 0) close(executable);
    return fail(ErrorCode::kFailed, std::string("watchdog: fork: ") + strerror(error));
  }
  if (child == 0) {
    // Gone with the agent: its PostgreSQL goes too (PR_SET_PDEATHSIG on the postmaster). The
    // setting survives the exec, as ignored signals do.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    ignore_the_agents_signals();
    if (executable >= 0) exec_program(memory, executable, argv);
    // The loop in the fork keeps none of the agent's descriptors either (the page stays
    // mapped): a restart forks from a busy agent, whose pipes to its children a copy held open
    // would keep from ever ending.
    if (syscall(SYS_close_range, 3, ~0U, 0) != 0) {
      for (int fd = 3; fd < 4096; ++fd) close(fd);  // a kernel before 5.9
    }
    prctl(PR_SET_NAME, "tandem-watchdog");
    run_fencing_loop(*shared, deadline_ms, fast_first);
  }
  if (executable >= 0) close(executable);
  std::string why;
  if (!loop_runs(*shared_, child, why)) {
    if (executable < 0) return fail(ErrorCode::kFailed, "watchdog: " + why);
    // The program would not run (another build's, a library missing): the loop in a fork.
    Status forked = spawn(false);
    if (forked) runs_ = "a fork of the agent: " + program_ + " would not run: " + why;
    return forked;
  }
  child_ = child;
  runs_ = executable >= 0 ? program_
                          : "a fork of the agent" + (fallback.empty() ? "" : ": " + fallback);
  return {};
}

FencingWatchdog::~FencingWatchdog() {
  if (child_ > 0) {
    kill(child_, SIGKILL);
    waitpid(child_, nullptr, 0);
  }
  munmap(shared_, sizeof(WatchdogShared));
  close(memory_fd_);
}

std::optional<std::string> FencingWatchdog::gone() {
  if (child_ <= 0) return exit_;
  int status = 0;
  pid_t waited = -1;
  do {
    waited = waitpid(child_, &status, WNOHANG);
  } while (waited < 0 && errno == EINTR);
  if (waited == 0) return std::nullopt;
  exit_ = "process " + std::to_string(child_) + ": " +
          (waited == child_ ? exit_description(status)
                            : std::string("not this agent's child any more: ") + strerror(errno));
  child_ = -1;
  return exit_;
}

Status FencingWatchdog::restart() {
  if (child_ > 0) return {};
  Status spawned = spawn();
  if (spawned) exit_.reset();
  return spawned;
}

void FencingWatchdog::watch(pid_t postmaster) {
  if (shared_->postmaster.exchange(postmaster) == postmaster) return;
  wake_fencing_loop(*shared_);
}

void FencingWatchdog::keep_alive(std::chrono::steady_clock::time_point at) {
  std::int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
  std::int64_t previous = shared_->confirmed_ns.load();
  while (ns > previous && !shared_->confirmed_ns.compare_exchange_weak(previous, ns)) {
  }
}

void FencingWatchdog::keep_alive_by_peers(std::chrono::steady_clock::time_point at) {
  bool lapsed = shared_->postmaster.load() > 0 &&
                boottime_ns() - shared_->confirmed_ns.load() >=
                    std::chrono::duration_cast<std::chrono::nanoseconds>(deadline_).count();
  if (!lapsed) keep_alive(at);  // lapsed: the watchdog stops the postmaster at its next look
}

std::optional<std::chrono::steady_clock::time_point> FencingWatchdog::fenced_at() const {
  std::int64_t ns = shared_->fenced_ns.load();
  if (ns == 0) return std::nullopt;
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

namespace {

// Every directory from `dir` up to the root: owned by root or by `owner`, and writable by
// nobody else but where the sticky bit keeps others from renaming what is not theirs. Else who
// could write one could put another file at the program's path.
std::optional<std::string> unsafe_directory(const std::filesystem::path& dir, uid_t owner) {
  std::error_code error;
  std::filesystem::path at = std::filesystem::canonical(dir, error);
  if (error) return dir.string() + ": " + error.message();
  while (true) {
    struct stat info {};
    if (stat(at.c_str(), &info) != 0) return at.string() + ": " + strerror(errno);
    bool writable_by_others = (info.st_mode & (S_IWGRP | S_IWOTH)) != 0;
    if ((info.st_uid != 0 && info.st_uid != owner) ||
        (writable_by_others && (info.st_mode & S_ISVTX) == 0)) {
      return at.string() + " may be written by others than its owner";
    }
    if (at == at.root_path()) return std::nullopt;
    at = at.parent_path();
  }
}

}  // namespace

Result<std::string> watchdog_program(const std::filesystem::path& binary) {
  struct stat own {};
  if (stat(binary.c_str(), &own) != 0) {
    return fail(ErrorCode::kFailed, binary.string() + ": " + strerror(errno));
  }
  const std::filesystem::path candidates[] = {
      binary.parent_path() / "tandem-watchdog",
      binary.parent_path().parent_path() / "libexec" / "tandem" / "tandem-watchdog"};
  std::string why;
  for (const auto& candidate : candidates) {
    struct stat file {};
    if (lstat(candidate.c_str(), &file) != 0) continue;
    if (auto unfit = unfit_program(file, own.st_uid)) {
      why = candidate.string() + " is not run: " + *unfit;
    } else if (auto unsafe = unsafe_directory(candidate.parent_path(), own.st_uid)) {
      why = candidate.string() + " is not run: " + *unsafe;
    } else {
      return candidate.string();
    }
  }
  if (why.empty()) {
    why = "no tandem-watchdog beside " + binary.string() + " nor in ../libexec/tandem";
  }
  return fail(ErrorCode::kNotFound, why);
}

Result<std::string> watchdog_program() {
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) return fail(ErrorCode::kFailed, "/proc/self/exe: " + error.message());
  return watchdog_program(self);
}

}  // namespace tandem
