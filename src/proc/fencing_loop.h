// The fencing watchdog's loop, shared by its own small program (src/watchdog, exec'd by the
// agent) and by a plain fork of the agent where that program cannot be run. It stops the watched
// postmaster once its right to write has not been confirmed for the deadline. Its only inputs
// are the numbers in `WatchdogShared`, a page the agent and the watchdog both map; it calls only
// async-signal-safe functions (it may run in the child of a fork) and needs nothing but libc.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

namespace tandem {

// The page's layout, written by the agent: a program of another build (a package half
// upgraded) that finds another number refuses to run, and the agent runs the loop in a fork.
inline constexpr std::uint64_t kWatchdogLayout = 0x74616e64656d0001;  // "tandem", version 1

struct WatchdogShared {
  std::atomic<std::uint64_t> layout;       // kWatchdogLayout
  std::atomic<std::int64_t> confirmed_ns;  // CLOCK_BOOTTIME, as SystemClock
  std::atomic<pid_t> postmaster;           // 0: nothing may write, the watchdog rests
  std::atomic<std::int64_t> fenced_ns;     // when it last stopped a postmaster; 0: never
  std::atomic<pid_t> running;              // the loop's pid, once it runs: the agent waits for it
};

// Never returns. `fast_first`: a fast shutdown before the immediate one (see FencingWatchdog).
// Says it runs (`shared.running`) before its first look.
[[noreturn]] void run_fencing_loop(WatchdogShared& shared, std::int64_t deadline_ms,
                                   bool fast_first);

// Wakes a loop resting on `shared.postmaster` once it changed (a futex shared by two processes).
void wake_fencing_loop(WatchdogShared& shared);

// CLOCK_BOOTTIME in nanoseconds: SystemClock's steady clock, the same in every process.
std::int64_t boottime_ns();

}  // namespace tandem
