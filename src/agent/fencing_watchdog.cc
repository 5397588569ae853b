#include "agent/fencing_watchdog.h"

#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tandem {
namespace {

// SystemClock's clock: it goes on while the machine is suspended.
std::int64_t monotonic_ns() {
  timespec now{};
  clock_gettime(CLOCK_BOOTTIME, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

void sleep_ms(long ms) {
  timespec pause{0, ms * 1'000'000};
  nanosleep(&pause, nullptr);
}

// Sleeps until `ns` on CLOCK_BOOTTIME, an absolute time: a watchdog frozen with its host (or
// suspended with it) and thawed after that time looks again at once. A relative sleep went on
// for what was left of it — up to 10 ms in which a thawed primary acknowledged a write while
// another node led (MultiHostTest.AFrozenPrimaryHostCutOffFromEtcdWritesNothingAfterItsThaw).
void sleep_until_ns(std::int64_t ns) {
  timespec until{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_BOOTTIME, TIMER_ABSTIME, &until, nullptr) == EINTR) {
  }
}

// The watched postmaster is a futex word shared by two processes (so not the private kind):
// the resting watchdog sleeps on it until watch() names a postmaster.
static_assert(sizeof(std::atomic<pid_t>) == sizeof(int) && std::atomic<pid_t>::is_always_lock_free);
int* futex_word(std::atomic<pid_t>& word) { return reinterpret_cast<int*>(&word); }

// Sleeps while `word` still holds `expected`, for `ms` at most.
void wait_while(std::atomic<pid_t>& word, pid_t expected, long ms) {
  timespec timeout{ms / 1000, (ms % 1000) * 1'000'000};
  syscall(SYS_futex, futex_word(word), FUTEX_WAIT, expected, &timeout, nullptr, 0);
}

}  // namespace

Result<std::unique_ptr<FencingWatchdog>> FencingWatchdog::start(std::chrono::milliseconds deadline,
                                                                bool fast_first) {
  void* memory =
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    return fail(ErrorCode::kFailed, std::string("watchdog: mmap: ") + strerror(errno));
  }
  auto* shared = new (memory) Shared{};
  shared->confirmed_ns = monotonic_ns();
  pid_t parent = getpid();
  pid_t child = fork();
  if (child < 0) return fail(ErrorCode::kFailed, std::string("watchdog: fork: ") + strerror(errno));
  if (child == 0) {
    // Gone with the agent: its PostgreSQL goes too (PR_SET_PDEATHSIG on the postmaster).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    prctl(PR_SET_NAME, "tandem-watchdog");
    run(shared, deadline, fast_first);
    _exit(0);
  }
  return std::unique_ptr<FencingWatchdog>(new FencingWatchdog(shared, child, deadline));
}

// Only async-signal-safe calls: the child of a fork.
void FencingWatchdog::run(Shared* shared, std::chrono::milliseconds deadline, bool fast_first) {
  const std::int64_t deadline_ns = deadline.count() * 1'000'000;
  // Ahead of PostgreSQL when both want the CPU (a thaw, a busy machine); refused unless root.
  setpriority(PRIO_PROCESS, 0, -20);
  while (true) {
    pid_t postmaster = shared->postmaster.load();
    if (postmaster <= 0) {
      // Resting: until watch() names a postmaster, a second at most. It used to look every
      // 10 ms: 0.15 % of a core on every idle node.
      wait_while(shared->postmaster, postmaster, 1000);
      continue;
    }
    // Watching: until its right to write lapses, as last confirmed; looked at again then, so
    // a renewal meanwhile only moves the next look. A confirmation never goes back, nor does
    // the deadline, and a new postmaster named meanwhile is held to the same one.
    sleep_until_ns(std::max(monotonic_ns(), shared->confirmed_ns.load() + deadline_ns));
    postmaster = shared->postmaster.load();
    if (postmaster <= 0) continue;
    if (monotonic_ns() - shared->confirmed_ns.load() < deadline_ns) continue;
    // Fast shutdown (one machine): every session ends at once and no new one starts, so nothing
    // more is acknowledged; the WAL senders pass what was flushed to the standbys before the
    // postmaster exits. Immediate (at once, or after 300 ms), SIGKILL a second later.
    kill(postmaster, fast_first ? SIGINT : SIGQUIT);
    shared->fenced_ns = monotonic_ns();
    shared->postmaster.compare_exchange_strong(postmaster, 0);
    for (int waited = 0; fast_first && waited < 30 && kill(postmaster, 0) == 0; ++waited) {
      sleep_ms(10);
    }
    if (kill(postmaster, 0) == 0) kill(postmaster, SIGQUIT);
    for (int waited = 0; waited < 100 && kill(postmaster, 0) == 0; ++waited) sleep_ms(10);
    if (kill(postmaster, 0) == 0) kill(postmaster, SIGKILL);
  }
}

FencingWatchdog::~FencingWatchdog() {
  kill(child_, SIGKILL);
  waitpid(child_, nullptr, 0);
  munmap(shared_, sizeof(Shared));
}

void FencingWatchdog::watch(pid_t postmaster) {
  if (shared_->postmaster.exchange(postmaster) == postmaster) return;
  syscall(SYS_futex, futex_word(shared_->postmaster), FUTEX_WAKE, 1, nullptr, nullptr, 0);
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
                monotonic_ns() - shared_->confirmed_ns.load() >=
                    std::chrono::duration_cast<std::chrono::nanoseconds>(deadline_).count();
  if (!lapsed) keep_alive(at);  // lapsed: the watchdog stops the postmaster at its next look
}

std::optional<std::chrono::steady_clock::time_point> FencingWatchdog::fenced_at() const {
  std::int64_t ns = shared_->fenced_ns.load();
  if (ns == 0) return std::nullopt;
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

}  // namespace tandem
