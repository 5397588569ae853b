#include "agent/fencing_watchdog.h"

#include <fcntl.h>
#include <linux/close_range.h>
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
#include <string>

namespace tandem {
namespace {

constexpr int kSharedFd = 3;  // where tandem-watchdog finds the shared page (src/watchdog)

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

// In the child of the fork: only async-signal-safe calls. The shared page goes to fd 3, every
// other descriptor but the standard three is closed, and the program replaces the fork; if it
// cannot, this returns and the fork runs the loop itself.
void exec_program(int fd, char* const argv[]) {
  if (fd == kSharedFd) {
    if (fcntl(fd, F_SETFD, 0) != 0) return;
  } else if (dup2(fd, kSharedFd) != kSharedFd) {
    return;
  }
  syscall(SYS_close_range, kSharedFd + 1, ~0U, 0);
  execv(argv[0], argv);
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
  shared->confirmed_ns = boottime_ns();
  pid_t parent = getpid();
  // Its arguments made before the fork: the child allocates nothing.
  std::string deadline_text = std::to_string(deadline.count());
  std::string parent_text = std::to_string(parent);
  std::string mode = fast_first ? "fast" : "immediate";
  char* const argv[] = {const_cast<char*>(program.c_str()), deadline_text.data(), mode.data(),
                        parent_text.data(), nullptr};
  pid_t child = fork();
  if (child < 0) {
    int error = errno;
    close(*fd);
    munmap(memory, sizeof(WatchdogShared));
    return fail(ErrorCode::kFailed, std::string("watchdog: fork: ") + strerror(error));
  }
  if (child == 0) {
    // Gone with the agent: its PostgreSQL goes too (PR_SET_PDEATHSIG on the postmaster). The
    // setting survives the exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    if (!program.empty()) exec_program(*fd, argv);
    prctl(PR_SET_NAME, "tandem-watchdog");
    run_fencing_loop(*shared, deadline.count(), fast_first);
  }
  close(*fd);
  return std::unique_ptr<FencingWatchdog>(new FencingWatchdog(shared, child, deadline));
}

FencingWatchdog::~FencingWatchdog() {
  kill(child_, SIGKILL);
  waitpid(child_, nullptr, 0);
  munmap(shared_, sizeof(WatchdogShared));
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
    if (!S_ISREG(file.st_mode) || (file.st_mode & S_IXUSR) == 0) {
      why = candidate.string() + " is not an executable file";
    } else if (file.st_uid != own.st_uid || (file.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
      why = candidate.string() + " may be written by others than " + binary.string() +
            "'s owner: not run";
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
