// The watchdog stops a watched process once a majority has not answered for its deadline, and
// leaves it alone while answers keep coming or while it watches nothing.
#include "agent/fencing_watchdog.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

namespace tandem {
namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

// A stand-in for a postmaster: a child that sleeps until signalled.
pid_t sleeper() {
  pid_t pid = fork();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  return pid;
}

bool exited_within(pid_t pid, milliseconds timeout) {
  auto deadline = Steady::now() + timeout;
  while (Steady::now() < deadline) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return false;
}

TEST(FencingWatchdog, StopsTheWatchedProcessWithoutAMajority) {
  auto watchdog = FencingWatchdog::start(milliseconds(200));
  ASSERT_TRUE(watchdog) << watchdog.error().message;
  pid_t postmaster = sleeper();
  auto began = Steady::now();
  (*watchdog)->keep_alive(began);
  (*watchdog)->watch(postmaster);
  ASSERT_TRUE(exited_within(postmaster, milliseconds(2000)));
  auto took = std::chrono::duration_cast<milliseconds>(Steady::now() - began);
  EXPECT_GE(took, milliseconds(190));
  ASSERT_TRUE((*watchdog)->fenced_at());
}

TEST(FencingWatchdog, LeavesItAloneWhileAnswersComeOrWhenNotWatching) {
  auto watchdog = FencingWatchdog::start(milliseconds(200));
  ASSERT_TRUE(watchdog);
  pid_t postmaster = sleeper();
  (*watchdog)->watch(postmaster);
  for (int beat = 0; beat < 40; ++beat) {  // 800 ms of answers every 20 ms
    (*watchdog)->keep_alive(Steady::now());
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_FALSE(exited_within(postmaster, milliseconds(1)));
  (*watchdog)->watch(0);  // a standby now: nothing to fence
  EXPECT_FALSE(exited_within(postmaster, milliseconds(500)));
  EXPECT_FALSE((*watchdog)->fenced_at());
  kill(postmaster, SIGKILL);
  waitpid(postmaster, nullptr, 0);
}

}  // namespace
}  // namespace tandem
