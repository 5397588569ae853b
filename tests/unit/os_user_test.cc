// The OS user tandem (as root) hands PostgreSQL's work to: a child becomes it with its groups,
// and does so with async-signal-safe calls only — the agent forks from a process with threads,
// and a child that called initgroups() there hung for ever (an agent's bootstrap, under ASan;
// with initgroups() back in the child, the second test below fails: a child spins for ever).
#include "proc/os_user.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "proc/process_runner.h"

namespace tandem {
namespace {

std::set<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::set<std::string> all;
  for (std::string word; in >> word;) all.insert(word);
  return all;
}

TEST(OsUser, AChildBecomesTheUserWithAllItsGroups) {
  ASSERT_EQ(geteuid(), 0u)
      << "becomes another user: needs root (run the tests as root, as CI does)";
  auto user = lookup_os_user("postgres");
  ASSERT_TRUE(user) << user.error().message;
  EXPECT_TRUE(std::ranges::find(user->groups, user->gid) != user->groups.end());
  SystemProcessRunner runner;
  auto id = runner.run({.program = "/usr/bin/id", .args = {"-u"}, .run_as = "postgres"});
  ASSERT_TRUE(id);
  EXPECT_EQ(words(id->output), std::set<std::string>{std::to_string(user->uid)});
  auto groups = runner.run({.program = "/usr/bin/id", .args = {"-G"}, .run_as = "postgres"});
  ASSERT_TRUE(groups);
  std::set<std::string> expected;
  for (gid_t gid : user->groups) expected.insert(std::to_string(gid));
  EXPECT_EQ(words(groups->output), expected)
      << "what `id -G postgres` says, supplementary included";
}

// The deadline holds whatever the child does with its output: one that keeps it open and one
// that closes it (a callback sending it to a file), then hangs, are both killed at the deadline;
// one that ends in time is waited for.
TEST(ProcessRunner, KillsAChildAtItsDeadlineEvenAfterItClosedItsOutput) {
  SystemProcessRunner runner;
  for (const char* script : {"echo started; sleep 30", "exec >/dev/null 2>&1; sleep 30"}) {
    SCOPED_TRACE(script);
    auto start = std::chrono::steady_clock::now();
    auto hung = runner.run(
        {.program = "/bin/sh", .args = {"-c", script}, .timeout = std::chrono::milliseconds(500)});
    ASSERT_FALSE(hung);
    EXPECT_EQ(hung.error().code, ErrorCode::kTimeout);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  }
  auto quick = runner.run({.program = "/bin/sh",
                           .args = {"-c", "exec >/dev/null; sleep 0.2; exit 3"},
                           .timeout = std::chrono::seconds(10)});
  ASSERT_TRUE(quick);
  EXPECT_EQ(quick->exit_code, 3);
}

// Children forked while other threads allocate and read the user and group databases all
// finish: 300 directory checks (each a child that becomes the user) against four such threads.
TEST(OsUser, ChildrenForkedWhileOtherThreadsAllocateNeverHang) {
  ASSERT_EQ(geteuid(), 0u)
      << "becomes another user: needs root (run the tests as root, as CI does)";
  auto user = lookup_os_user("postgres");
  ASSERT_TRUE(user);
  pid_t tester = fork();
  if (tester == 0) {
    setpgid(0, 0);  // its children in its group: killed with it whatever happens
    alarm(60);      // a hung child shows as SIGALRM, not as a hung test run
    std::atomic<bool> stop = false;
    std::vector<std::thread> allocators;
    for (int i = 0; i < 4; ++i) {
      allocators.emplace_back([&] {
        while (!stop) {
          auto block = std::make_unique<std::vector<char>>(4096 + std::rand() % 65536);
          (*block)[0] = 1;
          auto again = lookup_os_user("postgres");  // the user and group databases, as NSS reads
          (void)again;
        }
      });
    }
    int usable = 0;
    for (int i = 0; i < 300; ++i) usable += user_can_use_dir("/tmp", *user, true) ? 1 : 0;
    stop = true;
    for (std::thread& thread : allocators) thread.join();
    _exit(usable == 300 ? 0 : 1);
  }
  ASSERT_GT(tester, 0);
  int status = 0;
  ASSERT_EQ(waitpid(tester, &status, 0), tester);
  kill(-tester, SIGKILL);  // a child that hung (without the fix, it spins for ever)
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status)
                                 << " (14: a child hung for 60 s)";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "postgres could not use /tmp in some check";
}

}  // namespace
}  // namespace tandem
