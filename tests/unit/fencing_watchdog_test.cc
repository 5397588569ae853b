// The watchdog stops a watched process once a majority has not answered for its deadline, and
// leaves it alone while answers keep coming or while it watches nothing.
#include "agent/fencing_watchdog.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "common/clock.h"

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
  (*watchdog)->keep_alive(SystemClock().steady_now());
  (*watchdog)->watch(postmaster);
  ASSERT_TRUE(exited_within(postmaster, milliseconds(2000)));
  auto took = std::chrono::duration_cast<milliseconds>(Steady::now() - began);
  EXPECT_GE(took, milliseconds(190));
  // Bounded from above too: the deadline, plus this test's 5 ms polling, with room for a busy
  // machine.
  EXPECT_LE(took, milliseconds(200 + 150));
  ASSERT_TRUE((*watchdog)->fenced_at());
}

// Issue 16.3: a frozen host thaws with its watchdog and its pinger racing. Answers of the other
// agents that reach the watchdog after its deadline passed must not bring the right to write
// back: here the watchdog process is frozen past its deadline, the answers arrive, it thaws,
// and it stops the postmaster all the same. A renewal of the lease (keep_alive) still counts.
TEST(FencingWatchdog, AnswersNeverBringBackALapsedRight) {
  SystemClock clock;
  auto watchdog = FencingWatchdog::start(milliseconds(200));
  ASSERT_TRUE(watchdog);
  pid_t postmaster = sleeper();
  (*watchdog)->keep_alive(clock.steady_now());
  (*watchdog)->watch(postmaster);
  kill((*watchdog)->pid(), SIGSTOP);
  std::this_thread::sleep_for(milliseconds(300));  // past the deadline, the watchdog frozen
  (*watchdog)->keep_alive_by_peers(clock.steady_now());
  kill((*watchdog)->pid(), SIGCONT);
  EXPECT_TRUE(exited_within(postmaster, milliseconds(1000)))
      << "answers that came after the deadline kept the postmaster writable";
  if (waitpid(postmaster, nullptr, WNOHANG) == 0) {
    kill(postmaster, SIGKILL);
    waitpid(postmaster, nullptr, 0);
  }
  // Before the deadline, answers do keep it alive.
  pid_t second = sleeper();
  (*watchdog)->keep_alive(clock.steady_now());
  (*watchdog)->watch(second);
  for (int beat = 0; beat < 20; ++beat) {
    (*watchdog)->keep_alive_by_peers(clock.steady_now());
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_FALSE(exited_within(second, milliseconds(1)));
  (*watchdog)->watch(0);
  kill(second, SIGKILL);
  waitpid(second, nullptr, 0);
}

// A resting watchdog sleeps until it is told what to watch (a second at most): named a
// postmaster whose right lapsed long ago, it stops it at once, not at its next look.
TEST(FencingWatchdog, WakesWhenToldWhatToWatch) {
  auto watchdog = FencingWatchdog::start(milliseconds(200));
  ASSERT_TRUE(watchdog);
  (*watchdog)->keep_alive(SystemClock().steady_now());
  std::this_thread::sleep_for(milliseconds(400));  // resting, its right lapsed meanwhile
  pid_t postmaster = sleeper();
  auto began = Steady::now();
  (*watchdog)->watch(postmaster);
  ASSERT_TRUE(exited_within(postmaster, milliseconds(2000)));
  EXPECT_LE(std::chrono::duration_cast<milliseconds>(Steady::now() - began), milliseconds(150))
      << "not woken by watch(): stopped at its next look";
}

TEST(FencingWatchdog, LeavesItAloneWhileAnswersComeOrWhenNotWatching) {
  auto watchdog = FencingWatchdog::start(milliseconds(200));
  ASSERT_TRUE(watchdog);
  pid_t postmaster = sleeper();
  (*watchdog)->watch(postmaster);
  for (int beat = 0; beat < 40; ++beat) {  // 800 ms of answers every 20 ms
    (*watchdog)->keep_alive(SystemClock().steady_now());
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
