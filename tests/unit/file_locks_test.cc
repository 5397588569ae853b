// proc/file_locks: /proc/locks lines parsed, a stopped lock holder found, and signalled only
// while it still holds the lock stopped.
#include "proc/file_locks.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace tandem {
namespace {

TEST(ParsePosixLock, ReadsHeldPosixLocksAndNothingElse) {
  struct Case {
    const char* line;
    std::optional<PosixLock> expected;
  };
  std::vector<Case> cases = {
      {"1: POSIX  ADVISORY  WRITE 3021 fe:01:1234567 120 120", PosixLock{.write = true,
                                                                         .pid = 3021,
                                                                         .major = 0xfe,
                                                                         .minor = 1,
                                                                         .inode = 1234567,
                                                                         .start = 120,
                                                                         .end = 120}},
      {"12: POSIX  ADVISORY  READ 20373 08:11:42 128 128", PosixLock{.write = false,
                                                                     .pid = 20373,
                                                                     .major = 8,
                                                                     .minor = 0x11,
                                                                     .inode = 42,
                                                                     .start = 128,
                                                                     .end = 128}},
      {"3: POSIX  ADVISORY  WRITE 99 00:2a:7 0 EOF",
       PosixLock{
           .write = true, .pid = 99, .major = 0, .minor = 0x2a, .inode = 7, .start = 0, .end = -1}},
      {"4: FLOCK  ADVISORY  WRITE 20393 fe:00:11051377 0 EOF", std::nullopt},
      {"5: OFDLCK ADVISORY  WRITE -1 fe:00:11051377 0 EOF", std::nullopt},
      {"6: -> POSIX  ADVISORY  WRITE 3022 fe:01:1234567 120 120", std::nullopt},
      {"7: POSIX  ADVISORY  WRITE x fe:01:1234567 120 120", std::nullopt},
      {"8: POSIX  ADVISORY  WRITE 5 fe01:1234567 120 120", std::nullopt},
      {"9: POSIX  ADVISORY  WRITE 5 fe:01:1234567 120", std::nullopt},
      {"", std::nullopt},
  };
  for (const Case& each : cases) {
    auto parsed = parse_posix_lock(each.line);
    ASSERT_EQ(parsed.has_value(), each.expected.has_value()) << each.line;
    if (!parsed) continue;
    EXPECT_EQ(parsed->write, each.expected->write) << each.line;
    EXPECT_EQ(parsed->pid, each.expected->pid) << each.line;
    EXPECT_EQ(parsed->major, each.expected->major) << each.line;
    EXPECT_EQ(parsed->minor, each.expected->minor) << each.line;
    EXPECT_EQ(parsed->inode, each.expected->inode) << each.line;
    EXPECT_EQ(parsed->start, each.expected->start) << each.line;
    EXPECT_EQ(parsed->end, each.expected->end) << each.line;
  }
}

bool eventually(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// A child that takes a write lock on byte 120 of `path`, then stops itself; resumed, it exits.
pid_t holder_that_stops(const std::string& path) {
  pid_t child = fork();
  if (child == 0) {
    int fd = open(path.c_str(), O_RDWR);
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = 120;
    lock.l_len = 1;
    if (fd < 0 || fcntl(fd, F_SETLK, &lock) != 0) _exit(2);
    raise(SIGSTOP);
    _exit(0);
  }
  return child;
}

TEST(FileLocks, AStoppedHolderIsFoundAndResumedOnlyWhileItHoldsTheLock) {
  char dir[] = "/tmp/tandem-locks-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/store.db-shm";
  int fd = open(path.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 4096), 0);
  close(fd);
  EXPECT_EQ(posix_write_lock_holder(path, 120), std::nullopt);

  pid_t child = holder_that_stops(path);
  ASSERT_GT(child, 0);
  ASSERT_TRUE(eventually([&] { return process_stopped(child); }));
  EXPECT_EQ(posix_write_lock_holder(path, 120), child);
  EXPECT_EQ(posix_write_lock_holder(path, 121), std::nullopt) << "another byte";
  // The kernel's quick answer, over a descriptor of this process's (read-only suffices).
  int probe = open(path.c_str(), O_RDONLY);
  ASSERT_GE(probe, 0);
  EXPECT_EQ(posix_lock_taker(probe, 120), child);
  EXPECT_EQ(posix_lock_taker(probe, 121), 0) << "another byte";
  EXPECT_FALSE(process_stopped(getpid()));

  // `still` false: nothing is sent, the child stays stopped.
  ASSERT_TRUE(signal_if_still(child, SIGCONT, [](pid_t) { return false; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(process_stopped(child));
  // `still` true: resumed, the child exits and its lock goes with it.
  ASSERT_TRUE(signal_if_still(child, SIGCONT, [&](pid_t p) {
    return posix_write_lock_holder(path, 120) == p && process_stopped(p);
  }));
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(posix_write_lock_holder(path, 120), std::nullopt);
  EXPECT_EQ(posix_lock_taker(probe, 120), 0) << "released";
  close(probe);
  EXPECT_FALSE(process_stopped(child)) << "gone";
  // A process that is gone: nothing to do, no error (and no other process that may have its
  // pid by now is signalled: `still` asks the lock).
  EXPECT_TRUE(signal_if_still(child, SIGKILL,
                              [&](pid_t p) { return posix_write_lock_holder(path, 120) == p; }));
  unlink(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace tandem
