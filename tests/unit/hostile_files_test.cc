// Issue 11, points 2-4: root must not write, chown or signal what the PostgreSQL OS user plants in
// the directories it can write. These tests run as root (as the suite does) and play that user by
// handing a directory to `nobody`, then planting links where tandem writes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "local/local_agents.h"
#include "proc/os_user.h"
#include "proc/ports.h"
#include "proc/process_runner.h"
#include "proc/safe_file.h"
#include "proc/supervised_process.h"

namespace tandem {
namespace {

constexpr uid_t kNobody = 65534;

std::string contents(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

uid_t owner_of(const std::string& path) {
  struct stat info {};
  lstat(path.c_str(), &info);
  return info.st_uid;
}

class HostileFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Fails, never skips: CI runs as root, and a skip there would hide the whole test.
    ASSERT_EQ(geteuid(), 0u)
        << "plays root against another user: needs root (run the tests as root, as CI does)";
    char pattern[] = "/tmp/tandem-hostile-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = pattern;
    ASSERT_EQ(chmod(root_.c_str(), 0755), 0);
    // A file only root may touch, and the OS user's directory (its log/, run/, data dirs).
    secret_ = root_ + "/secret";
    std::ofstream(secret_) << "root's";
    ASSERT_EQ(chmod(secret_.c_str(), 0600), 0);
    user_dir_ = root_ + "/user";
    std::filesystem::create_directory(user_dir_);
    ASSERT_EQ(chown(user_dir_.c_str(), kNobody, kNobody), 0);
  }
  void TearDown() override {
    if (!root_.empty()) std::filesystem::remove_all(root_);
  }
  void plant_link(const std::string& at, const std::string& target) {
    ASSERT_EQ(symlink(target.c_str(), at.c_str()), 0);
  }
  void expect_untouched() {
    EXPECT_EQ(contents(secret_), "root's");
    EXPECT_EQ(owner_of(secret_), 0u);
    struct stat info {};
    stat(secret_.c_str(), &info);
    EXPECT_EQ(info.st_mode & 07777, 0600u);
  }

  std::string root_, secret_, user_dir_;
};

// state.json.tmp (tandem status), NODE/tandem.conf.tmp (a switchover): the temporary.
TEST_F(HostileFilesTest, AtomicWriteRefusesALinkAtItsTemporary) {
  plant_link(user_dir_ + "/state.json.tmp", secret_);
  auto written =
      write_owned_file(user_dir_ + "/state.json", "{}", OsUser{"nobody", kNobody, kNobody}, 0644);
  ASSERT_FALSE(written);
  EXPECT_NE(written.error().message.find("refusing to write " + user_dir_ + "/state.json: " +
                                         user_dir_ + "/state.json.tmp is a symbolic link"),
            std::string::npos)
      << written.error().message;
  expect_untouched();
}

// A link at the file itself is replaced by rename, never written through.
TEST_F(HostileFilesTest, AtomicWriteReplacesALinkAtTheFileItself) {
  plant_link(user_dir_ + "/tandem.conf", secret_);
  ASSERT_TRUE(write_owned_file(user_dir_ + "/tandem.conf", "port = 1\n",
                               OsUser{"nobody", kNobody, kNobody}, 0600));
  expect_untouched();
  EXPECT_EQ(contents(user_dir_ + "/tandem.conf"), "port = 1\n");
  EXPECT_EQ(owner_of(user_dir_ + "/tandem.conf"), kNobody);
}

TEST_F(HostileFilesTest, AtomicWriteRemovesAStaleTemporaryFile) {
  std::ofstream(user_dir_ + "/state.json.tmp") << "half";
  ASSERT_TRUE(
      write_owned_file(user_dir_ + "/state.json", "{}", OsUser{"nobody", kNobody, kNobody}, 0644));
  EXPECT_EQ(contents(user_dir_ + "/state.json"), "{}");
  EXPECT_FALSE(std::filesystem::exists(user_dir_ + "/state.json.tmp"));
}

// log/NODE.log (the agent restarts the postmaster), run/NODE.agent.lock (local start).
// standby.signal, a restored copy's pgbackrest.conf: removed by root in the OS user's directory.
// A directory the OS user swapped for a link to root's files is refused, nothing removed; a link
// at the file itself is removed, not what it points to; a missing file is no error.
TEST_F(HostileFilesTest, RemovingAFileNeverFollowsALink) {
  std::string data = user_dir_ + "/node1";
  plant_link(data, root_);  // the "data directory" now leads to root's directory
  auto refused = remove_file_nofollow(data + "/secret");
  ASSERT_FALSE(refused);
  expect_untouched();
  plant_link(user_dir_ + "/standby.signal", secret_);
  ASSERT_TRUE(remove_file_nofollow(user_dir_ + "/standby.signal"));
  expect_untouched();
  EXPECT_FALSE(std::filesystem::is_symlink(user_dir_ + "/standby.signal"));
  EXPECT_TRUE(remove_file_nofollow(user_dir_ + "/standby.signal"));  // gone already: fine
}

TEST_F(HostileFilesTest, OpenRefusesLinksHardLinksAndFifos) {
  plant_link(user_dir_ + "/node1.log", secret_);
  auto log = open_file_nofollow(user_dir_ + "/node1.log", O_WRONLY | O_CREAT | O_APPEND, 0640);
  ASSERT_FALSE(log);
  EXPECT_NE(log.error().message.find("refusing to open " + user_dir_ +
                                     "/node1.log: it is a symbolic link"),
            std::string::npos)
      << log.error().message;

  plant_link(user_dir_ + "/node1.agent.lock", secret_);
  auto lock = open_file_nofollow(user_dir_ + "/node1.agent.lock", O_RDWR | O_CREAT, 0644);
  ASSERT_FALSE(lock);
  EXPECT_NE(lock.error().message.find("symbolic link"), std::string::npos);

  ASSERT_EQ(link(secret_.c_str(), (user_dir_ + "/hard.log").c_str()), 0);
  auto hard = open_file_nofollow(user_dir_ + "/hard.log", O_WRONLY | O_APPEND);
  ASSERT_FALSE(hard);
  EXPECT_NE(hard.error().message.find("other names"), std::string::npos);
  unlink((user_dir_ + "/hard.log").c_str());

  ASSERT_EQ(mkfifo((user_dir_ + "/fifo.log").c_str(), 0644), 0);
  auto fifo = open_file_nofollow(user_dir_ + "/fifo.log", O_RDONLY);
  ASSERT_FALSE(fifo);
  EXPECT_NE(fifo.error().message.find("not a regular file"), std::string::npos);
  expect_untouched();

  auto fresh = open_file_nofollow(user_dir_ + "/node2.log", O_WRONLY | O_CREAT | O_APPEND, 0640);
  ASSERT_TRUE(fresh) << fresh.error().message;
}

// tandem adopt reads postgresql.auto.conf (a password it copies into tandem's password file),
// pg_hba.conf (rewritten with tandem's line first): a link there would hand root's file to the
// OS user.
TEST_F(HostileFilesTest, ReadingAServersFilesRefusesALink) {
  std::ofstream(user_dir_ + "/pg_hba.conf") << "local all all peer\n";
  auto plain = read_file_nofollow(user_dir_ + "/pg_hba.conf");
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(*plain, "local all all peer\n");
  plant_link(user_dir_ + "/postgresql.auto.conf", secret_);
  auto linked = read_file_nofollow(user_dir_ + "/postgresql.auto.conf");
  ASSERT_FALSE(linked);
  EXPECT_NE(linked.error().message.find("symbolic link"), std::string::npos)
      << linked.error().message;
  auto missing = read_file_nofollow(user_dir_ + "/absent.conf");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

// A directory of the OS user replaced by a link: never followed (log/ -> /etc), never chowned.
TEST_F(HostileFilesTest, DirectoriesAreNotFollowedOrChownedThroughLinks) {
  std::string root_only = root_ + "/root-only";
  std::filesystem::create_directory(root_only);
  plant_link(user_dir_ + "/run", root_only);
  auto through = open_file_nofollow(user_dir_ + "/run/node1.agent.lock", O_RDWR | O_CREAT);
  ASSERT_FALSE(through);
  EXPECT_NE(
      through.error().message.find("refusing to follow the symbolic link " + user_dir_ + "/run"),
      std::string::npos)
      << through.error().message;
  EXPECT_FALSE(std::filesystem::exists(root_only + "/node1.agent.lock"));

  plant_link(user_dir_ + "/node2", root_only);
  auto taken = ensure_owned_dir(user_dir_ + "/node2", OsUser{"nobody", kNobody, kNobody}, 0700,
                                /*take_existing=*/true);
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().message.find("refusing to give " + user_dir_ + "/node2 away"),
            std::string::npos)
      << taken.error().message;
  EXPECT_EQ(owner_of(root_only), 0u);

  // A link root itself made, in a directory only root writes, is followed as before.
  plant_link(root_ + "/alias", user_dir_);
  EXPECT_TRUE(open_file_nofollow(root_ + "/alias/fine.log", O_WRONLY | O_CREAT));
}

// Point 4: the directory of `local up`.
TEST_F(HostileFilesTest, ClusterDirectoryMustBeRootsOrTheOsUsers) {
  OsUser postgres{"postgres", 4242, 4242};
  auto others = check_private_dir(user_dir_, postgres);
  ASSERT_FALSE(others);
  EXPECT_NE(others.error().message.find("refusing " + user_dir_ + ": it belongs to nobody"),
            std::string::npos)
      << others.error().message;
  auto below = check_private_dir(user_dir_ + "/cluster", postgres);
  ASSERT_FALSE(below);
  EXPECT_NE(below.error().message.find(user_dir_ + " above it belongs to nobody"),
            std::string::npos)
      << below.error().message;

  std::string open_dir = root_ + "/open";
  std::filesystem::create_directory(open_dir);
  ASSERT_EQ(chmod(open_dir.c_str(), 0777), 0);
  auto writable = check_private_dir(open_dir, postgres);
  ASSERT_FALSE(writable);
  EXPECT_NE(writable.error().message.find("may be written by anyone (mode 0777)"),
            std::string::npos)
      << writable.error().message;
  ASSERT_EQ(chmod(open_dir.c_str(), 0775), 0);
  EXPECT_FALSE(check_private_dir(open_dir, postgres));

  // The OS user's own directory, root's, and a new one under /tmp (sticky) are fine.
  EXPECT_TRUE(check_private_dir(user_dir_, OsUser{"nobody", kNobody, kNobody}));
  EXPECT_TRUE(check_private_dir(root_ + "/new/cluster", postgres));
}

// Point 3: the lock file names a pid; root signals it only if it is that node's agent.
TEST_F(HostileFilesTest, LockNamingAnotherProcessIsRefused) {
  ClusterConfig config;
  config.socket_dir = user_dir_;
  NodeConfig node{.name = "node1", .data_dir = root_ + "/node1"};
  std::string lock = user_dir_ + "/node1.agent.lock";
  EXPECT_EQ(find_agent(config, node).value_or(std::optional<pid_t>(-1)), std::nullopt);
  int fd = open(lock.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX), 0);
  // Held (by this test) and naming pid 1: init, not the agent of node1.
  ASSERT_EQ(write(fd, "1\n", 2), 2);
  auto found = find_agent(config, node);
  ASSERT_FALSE(found);
  EXPECT_NE(found.error().message.find("names pid 1, which is not the agent of node1"),
            std::string::npos)
      << found.error().message;
  EXPECT_FALSE(kill_agent(config, node, SIGKILL));
  EXPECT_EQ(running_agent(config, node), std::nullopt);
  close(fd);
}

// find_agent asks whether an agent runs by taking its lock shared for an instant; an agent
// starting in that instant waits for it, while a lock held by another agent is refused.
TEST_F(HostileFilesTest, AnAgentStartingWhileItsLockIsProbedWaitsForTheProbe) {
  ClusterConfig config;
  config.socket_dir = user_dir_;
  NodeConfig node{.name = "node1", .data_dir = root_ + "/node1"};
  std::string lock = user_dir_ + "/node1.agent.lock";
  int probe = open(lock.c_str(), O_RDONLY | O_CREAT, 0644);
  ASSERT_GE(probe, 0);
  ASSERT_EQ(flock(probe, LOCK_SH), 0);
  SystemClock clock;
  // Without patience the probe's instant is taken for a running agent.
  auto impatient = lock_agent(config, node, clock, std::chrono::milliseconds(0));
  ASSERT_FALSE(impatient);
  EXPECT_EQ(impatient.error().code, ErrorCode::kConflict);
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    flock(probe, LOCK_UN);
  });
  auto patient = lock_agent(config, node, clock);
  release.join();
  ASSERT_TRUE(patient) << patient.error().message;
  EXPECT_EQ(read_file(lock).value_or(""), std::to_string(getpid()) + "\n");
  // Held now: a second agent of node1 is refused once its patience is spent.
  auto second = lock_agent(config, node, clock, std::chrono::milliseconds(30));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().message, "an agent of node1 already runs");
  close(*patient);
  close(probe);
}

TEST(FailureLine, PrefersTheErrorOverTheCleanup) {
  EXPECT_EQ(failure_line("creating directory ... ok\n"
                         "initdb: error: could not write to file \"base/1/1249\": No space left "
                         "on device\n"
                         "initdb: removing contents of data directory \"/x/node1\"\n"),
            "initdb: error: could not write to file \"base/1/1249\": No space left on device");
  EXPECT_EQ(failure_line("all fine\nthe end\n"), "the end");
  // A full disk is named even when another error follows it (pg_basebackup's WAL process).
  EXPECT_EQ(failure_line("pg_basebackup: error: could not write to file \"x\": No space left on "
                         "device\n"
                         "pg_basebackup: error: background process terminated unexpectedly\n"
                         "pg_basebackup: removing contents of data directory \"/x\"\n"),
            "pg_basebackup: error: could not write to file \"x\": No space left on device");
  // pgBackRest's error, among the lines of a detail log (a progress display).
  EXPECT_EQ(failure_line("P00   INFO: backup command begin 2.45: --type=full\n"
                         "ERROR: [050]: unable to acquire lock on file 'x-backup.lock'\n"
                         "       HINT: is another pgBackRest process running?\n"
                         "P00   INFO: backup command end: aborted with exception [050]\n"),
            "ERROR: [050]: unable to acquire lock on file 'x-backup.lock'");
}

TEST(ProcessRunner, HandsOnEachLineAsItComesAndStillCapturesAll) {
  SystemProcessRunner runner;
  std::vector<std::string> lines;
  // The second line comes in two writes, the last with no newline.
  ProcessSpec spec{.program = "/bin/sh",
                   .args = {"-c", "printf 'one\\ntw'; sleep 0.1; printf 'o\\nthree'"},
                   .on_line = [&](std::string_view line) { lines.emplace_back(line); }};
  auto done = runner.run(spec);
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(done->output, "one\ntwo\nthree");
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));

  // A callback that throws hears no more, and the child is still waited for.
  int heard = 0;
  spec.on_line = [&](std::string_view) {
    ++heard;
    throw std::runtime_error("stderr closed");
  };
  done = runner.run(spec);
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(heard, 1);
  EXPECT_EQ(done->exit_code, 0);

  // With a callback, a long output keeps its end (the lines all heard).
  int count = 0;
  spec.args = {"-c", "seq 1 200000"};
  spec.on_line = [&](std::string_view) { ++count; };
  done = runner.run(spec);
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(count, 200000);
  EXPECT_LT(done->output.size(), 300'000u);
  EXPECT_TRUE(done->output.ends_with("199999\n200000\n"));
}

// on_exit hears of the child's end while it is still a zombie: its pid cannot have gone to
// another process yet (SupervisedProcess forgets it there). At its deadline too.
TEST(ProcessRunner, SaysTheEndBeforeItReapsTheChild) {
  SystemProcessRunner runner;
  auto state_of = [](int pid) {
    std::string stat = contents("/proc/" + std::to_string(pid) + "/stat");
    auto closing = stat.rfind(')');
    return closing == std::string::npos || closing + 2 >= stat.size() ? '?' : stat[closing + 2];
  };
  for (bool late : {false, true}) {
    int started = 0, ended = 0;
    char state = '?';
    ProcessSpec spec{.program = "/bin/sh",
                     .args = {"-c", late ? "exec sleep 30" : "exit 3"},
                     .timeout = std::chrono::milliseconds(late ? 300 : 10000),
                     .on_start = [&](int pid) { started = pid; },
                     .on_exit =
                         [&](int pid) {
                           ended = pid;
                           state = state_of(pid);
                         }};
    auto done = runner.run(spec);
    EXPECT_EQ(done.has_value(), !late);
    EXPECT_NE(started, 0);
    EXPECT_EQ(ended, started) << (late ? "killed at its deadline" : "exited");
    EXPECT_EQ(state, 'Z') << "on_exit must come before the reaping";
    EXPECT_EQ(state_of(started), '?') << "reaped once run returns";
  }
}

TEST(IsOwnAddress, TellsThisMachinesAddressesFromOthers) {
  EXPECT_TRUE(is_own_address("127.0.0.1"));
  EXPECT_TRUE(is_own_address("::1"));
  EXPECT_FALSE(is_own_address("192.0.2.1"));  // TEST-NET-1
  EXPECT_FALSE(is_own_address("127.0.0.2"));  // binds (all of 127/8 does), but no interface has it
  EXPECT_FALSE(is_own_address("localhost"));  // a name, not an address
}

TEST(CheckPortFree, SaysWhatIsWrong) {
  auto name = check_port_free("localhost", 5432, "node1");
  ASSERT_FALSE(name);
  EXPECT_NE(name.error().message.find("host 'localhost' of node1 is not an IP address"),
            std::string::npos);
  // TEST-NET-1: documentation only, never an address of this machine.
  auto foreign = check_port_free("192.0.2.1", 5432, "node1");
  ASSERT_FALSE(foreign);
  EXPECT_NE(foreign.error().message.find("192.0.2.1 of node1 is not an address of this machine"),
            std::string::npos)
      << foreign.error().message;
}

// A server that ends is started again (a second later, then later still); one still running
// when the object goes is stopped, its process group with it, at once.
TEST(SupervisedProcess, StartsAServerAgainAndStopsItWhenItGoes) {
  char pattern[] = "/tmp/tandem-supervised-XXXXXX";
  std::string dir = mkdtemp(pattern);
  SystemProcessRunner runner;
  {
    SupervisedProcess quitter(
        runner, ProcessSpec{.program = "/bin/sh", .args = {"-c", "echo x >> '" + dir + "/runs'"}},
        "a quitter");
    // Waits for the second run's line, not for its start: a start counted before the shell
    // wrote would be stopped with the object, its line never written.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (contents(dir + "/runs").size() < 4u && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_GE(quitter.starts(), 2);
  }
  EXPECT_GE(contents(dir + "/runs").size(), 4u);
  auto started = std::chrono::steady_clock::now();
  {
    // A child of its own (the shell's sleep) goes too.
    SupervisedProcess server(
        runner,
        ProcessSpec{.program = "/bin/sh",
                    .args = {"-c", "sleep 300 & echo $! > '" + dir + "/child'; wait"}},
        "a server");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (contents(dir + "/child").empty() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(server.starts(), 1);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));
  std::string child = contents(dir + "/child");
  ASSERT_FALSE(child.empty());
  pid_t pid = std::stoi(child);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (kill(pid, 0) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(kill(pid, 0), 0) << "the server's child " << pid << " outlived it";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem
