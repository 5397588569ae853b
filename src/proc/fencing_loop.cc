#include "proc/fencing_loop.h"

#include <linux/futex.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace tandem {
namespace {

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
static_assert(std::atomic<std::int64_t>::is_always_lock_free);
int* futex_word(std::atomic<pid_t>& word) { return reinterpret_cast<int*>(&word); }

// Sleeps while `word` still holds `expected`, for `ms` at most.
void wait_while(std::atomic<pid_t>& word, pid_t expected, long ms) {
  timespec timeout{ms / 1000, (ms % 1000) * 1'000'000};
  syscall(SYS_futex, futex_word(word), FUTEX_WAIT, expected, &timeout, nullptr, 0);
}

// Fast shutdown (one machine): every session ends at once and no new one starts, so nothing
// more is acknowledged; the WAL senders pass what was flushed to the standbys before the
// postmaster exits. Immediate (at once, or after 300 ms), SIGKILL a second later.
// The fence is recorded before the signal: whoever sees the postmaster gone sees why (the
// other order let a reader that reaped it first find no fence, 2 of 353 under ASan).
void stop_postmaster(WatchdogShared& shared, pid_t postmaster, bool fast_first) {
  shared.fenced_ns = boottime_ns();
  kill(postmaster, fast_first ? SIGINT : SIGQUIT);
  shared.postmaster.compare_exchange_strong(postmaster, 0);
  for (int waited = 0; fast_first && waited < 30 && kill(postmaster, 0) == 0; ++waited) {
    sleep_ms(10);
  }
  if (kill(postmaster, 0) == 0) kill(postmaster, SIGQUIT);
  for (int waited = 0; waited < 100 && kill(postmaster, 0) == 0; ++waited) sleep_ms(10);
  if (kill(postmaster, 0) == 0) kill(postmaster, SIGKILL);
}

}  // namespace

std::int64_t boottime_ns() {
  timespec now{};
  clock_gettime(CLOCK_BOOTTIME, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

void run_fencing_loop(WatchdogShared& shared, std::int64_t deadline_ms, bool fast_first) {
  const std::int64_t deadline_ns = deadline_ms * 1'000'000;
  // Ahead of PostgreSQL when both want the CPU (a thaw, a busy machine); refused unless root.
  setpriority(PRIO_PROCESS, 0, -20);
  shared.running = getpid();
  while (true) {
    pid_t postmaster = shared.postmaster.load();
    if (postmaster <= 0) {
      // Resting: until watch() names a postmaster, a second at most. It used to look every
      // 10 ms: 0.15 % of a core on every idle node.
      wait_while(shared.postmaster, postmaster, 1000);
      continue;
    }
    // Watching: until its right to write lapses, as last confirmed; looked at again then, so
    // a renewal meanwhile only moves the next look. A confirmation never goes back, nor does
    // the deadline, and a new postmaster named meanwhile is held to the same one.
    sleep_until_ns(std::max(boottime_ns(), shared.confirmed_ns.load() + deadline_ns));
    postmaster = shared.postmaster.load();
    if (postmaster <= 0) continue;
    if (boottime_ns() - shared.confirmed_ns.load() < deadline_ns) continue;
    stop_postmaster(shared, postmaster, fast_first);
  }
}

void wake_fencing_loop(WatchdogShared& shared) {
  syscall(SYS_futex, futex_word(shared.postmaster), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

}  // namespace tandem
