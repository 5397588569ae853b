// The watchdog stops a watched process once a majority has not answered for its deadline, and
// leaves it alone while answers keep coming or while it watches nothing: as its own program
// (tandem-watchdog, exec'd), as a fork of the agent, and as a fork whose exec failed.
#include "agent/fencing_watchdog.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

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

class Watchdogs : public ::testing::TestWithParam<std::string> {};

bool exited_within(pid_t pid, milliseconds timeout) {
  auto deadline = Steady::now() + timeout;
  while (Steady::now() < deadline) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return false;
}

TEST_P(Watchdogs, StopsTheWatchedProcessWithoutAMajority) {
  auto watchdog = FencingWatchdog::start(milliseconds(200), false, GetParam());
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
TEST_P(Watchdogs, AnswersNeverBringBackALapsedRight) {
  SystemClock clock;
  auto watchdog = FencingWatchdog::start(milliseconds(200), false, GetParam());
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
TEST_P(Watchdogs, WakesWhenToldWhatToWatch) {
  auto watchdog = FencingWatchdog::start(milliseconds(200), false, GetParam());
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

TEST_P(Watchdogs, LeavesItAloneWhileAnswersComeOrWhenNotWatching) {
  auto watchdog = FencingWatchdog::start(milliseconds(200), false, GetParam());
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

// Killed (by hand, the OOM killer), the watchdog says it is gone and why; started again — while
// other threads run, as from the agent's cycle — it watches what it watched and is held to the
// same confirmation: the postmaster goes at the deadline of the last renewal before the kill.
TEST_P(Watchdogs, KilledItSaysSoAndStartsAgainHeldToTheSameDeadline) {
  auto watchdog = FencingWatchdog::start(milliseconds(300), false, GetParam());
  ASSERT_TRUE(watchdog) << watchdog.error().message;
  EXPECT_FALSE((*watchdog)->gone());
  EXPECT_TRUE((*watchdog)->restart()) << "a restart of one that runs changes nothing";
  pid_t first = (*watchdog)->pid();
  pid_t postmaster = sleeper();
  auto confirmed = Steady::now();
  (*watchdog)->keep_alive(SystemClock().steady_now());
  (*watchdog)->watch(postmaster);
  ASSERT_EQ(kill(first, SIGKILL), 0);
  std::optional<std::string> gone;
  for (int tries = 0; tries < 200 && !gone; ++tries) {
    gone = (*watchdog)->gone();
    if (!gone) std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_TRUE(gone) << "a killed watchdog was not seen gone";
  EXPECT_NE(gone->find("killed by signal 9"), std::string::npos) << *gone;
  EXPECT_EQ((*watchdog)->gone(), gone) << "it stays gone until started again";
  // Started again 200 ms after the last confirmation: held to that confirmation's deadline
  // (300 ms), not to one counted from its start (500 ms).
  std::this_thread::sleep_until(confirmed + milliseconds(200));
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    while (!stop) std::this_thread::sleep_for(milliseconds(1));
  });
  Status restarted = (*watchdog)->restart();
  stop = true;
  busy.join();
  ASSERT_TRUE(restarted) << restarted.error().message;
  EXPECT_FALSE((*watchdog)->gone());
  EXPECT_NE((*watchdog)->pid(), first);
  ASSERT_TRUE(exited_within(postmaster, milliseconds(2000)))
      << "the restarted watchdog did not stop the postmaster it was watching";
  auto took = std::chrono::duration_cast<milliseconds>(Steady::now() - confirmed);
  EXPECT_GE(took, milliseconds(290));
  EXPECT_LE(took, milliseconds(300 + 150)) << "held to a deadline counted from its restart";
  EXPECT_TRUE((*watchdog)->fenced_at());
}

// Its own program; a plain fork; a fork for a program that is not there; a fork for a program
// that runs but exits at once (another build's, say: /bin/false stands for it).
INSTANTIATE_TEST_SUITE_P(Kinds, Watchdogs,
                         ::testing::Values(std::string(TANDEM_WATCHDOG_PROGRAM), std::string(),
                                           std::string("/nonexistent/tandem-watchdog"),
                                           std::string("/bin/false")),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           if (info.param.empty()) return std::string("Fork");
                           if (info.param == "/bin/false") return std::string("ForkAfterAnExit");
                           return std::string(info.param.starts_with("/nonexistent")
                                                  ? "ForkForAMissingProgram"
                                                  : "OwnProgram");
                         });

// Which runs the loop, and that it says so.
TEST_P(Watchdogs, SaysWhatRunsItsLoop) {
  auto watchdog = FencingWatchdog::start(milliseconds(200), false, GetParam());
  ASSERT_TRUE(watchdog) << watchdog.error().message;
  if (GetParam() == TANDEM_WATCHDOG_PROGRAM) {
    EXPECT_EQ((*watchdog)->runs(), GetParam());
  } else {
    EXPECT_TRUE((*watchdog)->runs().starts_with("a fork of the agent")) << (*watchdog)->runs();
  }
  if (GetParam() == "/bin/false") {
    EXPECT_NE((*watchdog)->runs().find("exited with status 1"), std::string::npos)
        << (*watchdog)->runs();
  }
}

// A stand-in for a postmaster that writes the first signal it gets to `report`, then exits.
int g_report = -1;
pid_t reporting_sleeper(int report) {
  pid_t pid = fork();
  if (pid == 0) {
    g_report = report;
    struct sigaction tell {};
    tell.sa_handler = [](int signal) {
      (void)!write(g_report, &signal, sizeof signal);
      _exit(0);
    };
    for (int signal : {SIGINT, SIGQUIT, SIGTERM}) sigaction(signal, &tell, nullptr);
    while (true) pause();
  }
  return pid;
}

// One machine: a fast shutdown first (SIGINT), so that the standbys get the last commits; several
// machines: an immediate one (SIGQUIT), which keeps the WAL a rewind needs.
TEST_P(Watchdogs, StopsFastOrImmediatelyAsItWasTold) {
  for (bool fast_first : {true, false}) {
    SCOPED_TRACE(fast_first ? "fast first" : "immediate");
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    auto watchdog = FencingWatchdog::start(milliseconds(100), fast_first, GetParam());
    ASSERT_TRUE(watchdog) << watchdog.error().message;
    pid_t postmaster = reporting_sleeper(pipe_fds[1]);
    (*watchdog)->keep_alive(SystemClock().steady_now());
    (*watchdog)->watch(postmaster);
    int signal = 0;
    ASSERT_EQ(read(pipe_fds[0], &signal, sizeof signal), static_cast<ssize_t>(sizeof signal));
    EXPECT_EQ(signal, fast_first ? SIGINT : SIGQUIT);
    waitpid(postmaster, nullptr, 0);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
  }
}

// The signals meant for the agent (a terminal's Ctrl-C, a signal to its process group, a
// service manager's SIGTERM to the unit's processes) leave the watchdog watching: it is the one
// that must still fence if the agent's stop hangs. It has a session of its own.
TEST_P(Watchdogs, OutlivesTheSignalsMeantForTheAgent) {
  auto watchdog = FencingWatchdog::start(milliseconds(200), false, GetParam());
  ASSERT_TRUE(watchdog) << watchdog.error().message;
  pid_t pid = (*watchdog)->pid();
  EXPECT_EQ(getsid(pid), pid);
  for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ASSERT_EQ(kill(pid, signal), 0);
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), 0) << "the watchdog died of a signal for the agent";
  pid_t postmaster = sleeper();
  (*watchdog)->keep_alive(SystemClock().steady_now());
  (*watchdog)->watch(postmaster);
  EXPECT_TRUE(exited_within(postmaster, milliseconds(2000)));
}

std::string exe_of(pid_t pid) {
  std::error_code error;
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", error).string();
}

std::set<std::string> open_fds(pid_t pid) {
  std::set<std::string> fds;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    fds.insert(entry.path().filename().string());
  }
  return fds;
}

// The program replaces the fork: nothing of the agent's memory stays in it (its heap held the
// API's token and the store's credentials), nor any descriptor but the standard three once it
// has mapped the shared page.
TEST(WatchdogProgram, ReplacesTheForkAndKeepsNothingOfTheAgent) {
  // A descriptor without O_CLOEXEC, above the two the child moves: not passed on.
  int opened = open("/dev/null", O_RDONLY);
  ASSERT_GE(opened, 0);
  int held = fcntl(opened, F_DUPFD, 50);
  close(opened);
  ASSERT_GE(held, 50);
  auto watchdog = FencingWatchdog::start(milliseconds(200), false, TANDEM_WATCHDOG_PROGRAM);
  close(held);
  ASSERT_TRUE(watchdog) << watchdog.error().message;
  pid_t pid = (*watchdog)->pid();
  auto deadline = Steady::now() + std::chrono::seconds(5);
  while (Steady::now() < deadline &&
         (exe_of(pid) != TANDEM_WATCHDOG_PROGRAM || open_fds(pid).contains("3"))) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_EQ(exe_of(pid), TANDEM_WATCHDOG_PROGRAM);
  EXPECT_EQ(open_fds(pid), (std::set<std::string>{"0", "1", "2"}));
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(comm, name);
  EXPECT_EQ(name, "tandem-watchdog");
}

// Run by hand, or for a process that is not its parent, it does nothing.
TEST(WatchdogProgram, RunByHandItExitsAtOnce) {
  struct Case {
    std::vector<std::string> args;
    int exit_code;
  };
  const Case cases[] = {
      {{}, 2},
      {{"600", "fast"}, 2},
      {{"0", "fast", "1"}, 2},
      {{"600", "slow", "1"}, 2},
      {{"600", "fast", "x1"}, 2},
      {{"600", "immediate", "1"}, 0},  // its parent is this test, not pid 1
  };
  for (const Case& each : cases) {
    pid_t child = fork();
    if (child == 0) {
      std::vector<char*> argv{const_cast<char*>(TANDEM_WATCHDOG_PROGRAM)};
      for (const std::string& arg : each.args) argv.push_back(const_cast<char*>(arg.c_str()));
      argv.push_back(nullptr);
      int null = open("/dev/null", O_WRONLY);
      dup2(null, STDERR_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), each.exit_code) << ::testing::PrintToString(each.args);
  }
}

// The program is found beside the binary or in ../libexec/tandem, and run only where nobody but
// the binary's owner may have put it there.
TEST(WatchdogProgram, IsRunOnlyWhereOnlyTheBinarysOwnerMayHavePutIt) {
  namespace fs = std::filesystem;
  struct Case {
    std::string name;
    std::string place;  // "bin" (beside the binary) or "libexec"
    fs::perms mode;
    bool other_owner;
    bool link;
    std::string found;            // "" if refused
    bool open_directory = false;  // its directory writable by anyone (and not sticky)
  };
  const fs::perms kOwnerOnly = fs::perms::owner_all | fs::perms::group_read |
                               fs::perms::group_exec | fs::perms::others_read |
                               fs::perms::others_exec;
  const Case cases[] = {
      {"beside the binary", "bin", kOwnerOnly, false, false, "bin"},
      {"in ../libexec/tandem", "libexec", kOwnerOnly, false, false, "libexec"},
      {"writable by its group", "bin", kOwnerOnly | fs::perms::group_write, false, false, ""},
      {"writable by anyone", "libexec", kOwnerOnly | fs::perms::others_write, false, false, ""},
      {"owned by another user", "bin", kOwnerOnly, true, false, ""},
      {"not executable", "bin", fs::perms::owner_read | fs::perms::owner_write, false, false, ""},
      {"a symbolic link", "bin", kOwnerOnly, false, true, ""},
      {"set-user-ID", "bin", kOwnerOnly | fs::perms::set_uid, false, false, ""},
      {"in a directory others may write", "bin", kOwnerOnly, false, false, "", true},
      {"nowhere", "", kOwnerOnly, false, false, ""},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.name);
    fs::path root =
        fs::temp_directory_path() / ("tandem-watchdog-program-" + std::to_string(getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "bin");
    fs::create_directories(root / "libexec" / "tandem");
    fs::path binary = root / "bin" / "tandem";
    std::ofstream(binary) << "binary";
    fs::path at = each.place == "bin" ? root / "bin" / "tandem-watchdog"
                                      : root / "libexec" / "tandem" / "tandem-watchdog";
    if (!each.place.empty()) {
      if (each.link) {
        fs::create_symlink(TANDEM_WATCHDOG_PROGRAM, at);
      } else {
        std::ofstream(at) << "program";
        fs::permissions(at, each.mode);
        if (each.other_owner) {
          if (geteuid() != 0) GTEST_SKIP() << "giving a file to another user needs root";
          ASSERT_EQ(chown(at.c_str(), 65534, 65534), 0);
        }
      }
    }
    if (each.open_directory) fs::permissions(at.parent_path(), fs::perms::all);
    auto found = watchdog_program(binary);
    if (each.found.empty()) {
      ASSERT_FALSE(found) << *found;
      EXPECT_FALSE(found.error().message.empty());
    } else {
      ASSERT_TRUE(found) << found.error().message;
      EXPECT_EQ(*found, at.string());
    }
    fs::remove_all(root);
  }
}

}  // namespace
}  // namespace tandem
