// Issue 11: hostile clients and careless operators, against the real tandem binary. Links planted
// by the PostgreSQL OS user where root writes, a lock file naming a process to kill, directories
// others can write, aliased data directories, and the small refusals of the point 7.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pty.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "bench/local_queries.h"
#include "local_cluster_fixture.h"
#include "pg/postmaster.h"
#include "proc/os_user.h"
#include "proc/ports.h"
#include "proc/process_runner.h"

namespace tandem::testing {
namespace {

// proc's read_file: it never throws (std::istreambuf_iterator did, reading the /proc file of a
// process that exited meanwhile — and the exception, unwinding past a running thread, aborted
// the test under ASan: "terminate called without an active exception").
std::string contents(const std::string& path) { return read_file(path).value_or(""); }

class HostileTest : public LocalClusterTest {
 protected:
  // A file only root may touch, outside every directory the OS user can write.
  void make_secret() {
    std::string root_only = dir_ + "/root-only";
    std::filesystem::create_directory(root_only);
    ASSERT_EQ(chmod(root_only.c_str(), 0700), 0);
    secret_ = root_only + "/secret";
    std::ofstream(secret_) << "root's";
    ASSERT_EQ(chmod(secret_.c_str(), 0600), 0);
  }
  void plant_link(const std::string& at) {
    std::filesystem::remove(at);
    ASSERT_EQ(symlink(secret_.c_str(), at.c_str()), 0) << at;
  }
  void expect_secret_untouched() {
    EXPECT_EQ(contents(secret_), "root's");
    struct stat info {};
    ASSERT_EQ(stat(secret_.c_str(), &info), 0);
    EXPECT_EQ(info.st_uid, 0u);
    EXPECT_EQ(info.st_mode & 07777, 0600u);
  }
  bool log_says(const std::string& log, const std::string& text) {
    return contents(log).find(text) != std::string::npos;
  }

  std::string secret_;
};

// Point 2: a link at each path root writes in a directory of the OS user.
TEST_F(HostileTest, LinksPlantedByTheOsUserAreRefused) {
  write_config(1, {}, /*agents=*/true);
  make_secret();
  auto postgres = lookup_os_user(config_.os_user);
  ASSERT_TRUE(postgres);
  // As `local up` leaves a directory it created: the OS user's.
  ASSERT_EQ(chown(dir_.c_str(), postgres->uid, postgres->gid), 0);
  tandem_ok({"local", "up", "--dir", dir_});

  // state.json.tmp: `tandem status` remembers slots there.
  plant_link(dir_ + "/state.json.tmp");
  CommandOutput status = tandem({"status"});
  EXPECT_NE(status.output.find("refusing to write " + dir_ + "/state.json: " + dir_ +
                               "/state.json.tmp is a symbolic link"),
            std::string::npos)
      << status.output;
  expect_secret_untouched();
  std::filesystem::remove(dir_ + "/state.json.tmp");

  std::string primary = bench::writable_node(config_);
  std::string standby = primary == "node1" ? "node2" : "node1";

  // run/NODE.agent.lock: `local start`.
  tandem_ok({"local", "stop", standby});
  std::string lock = config_.socket_dir + "/" + standby + ".agent.lock";
  plant_link(lock);
  CommandOutput start = tandem({"local", "start", standby});
  EXPECT_EQ(start.exit_code, 1) << start.output;
  EXPECT_NE(start.output.find("refusing to open " + lock + ": it is a symbolic link"),
            std::string::npos)
      << start.output;
  expect_secret_untouched();
  std::filesystem::remove(lock);
  tandem_ok({"local", "start", standby});

  // log/NODE.log: the agent restarts a crashed postmaster with its output there.
  std::string server_log = config_.log_dir + "/" + standby + ".log";
  std::string agent_log = config_.log_dir + "/" + standby + ".agent.log";
  ASSERT_TRUE(eventually([&] { return running_postmaster(node(standby).data_dir).has_value(); }));
  plant_link(server_log);
  tandem_ok({"local", "kill-pg", standby});
  EXPECT_TRUE(eventually([&] {
    return log_says(agent_log, "refusing to open " + server_log + ": it is a symbolic link");
  })) << contents(agent_log);
  expect_secret_untouched();
  std::filesystem::remove(server_log);
  ASSERT_TRUE(eventually(
      [&] {
        return value(primary,
                     "SELECT count(*)::text AS v FROM pg_stat_replication WHERE state = "
                     "'streaming'") == "1";
      },
      std::chrono::seconds(60)));

  // NODE/tandem.conf.tmp: a switchover rewrites the old primary's tandem.conf.
  std::string temporary = node(primary).data_dir + "/tandem.conf.tmp";
  plant_link(temporary);
  // Until the agents have published the standby's return, it is not yet a candidate.
  CommandOutput switchover;
  eventually([&] {
    switchover = tandem({"switchover", "--to", standby});
    return switchover.output.find("is not a running standby") == std::string::npos;
  });
  std::string primary_log = config_.log_dir + "/" + primary + ".agent.log";
  EXPECT_TRUE(eventually([&] {
    return log_says(primary_log, "refusing to write " + node(primary).data_dir +
                                     "/tandem.conf: " + temporary + " is a symbolic link");
  })) << switchover.output
      << "\n"
      << contents(primary_log);
  expect_secret_untouched();
  std::filesystem::remove(temporary);
}

// Point 2: the config names the files root writes; root reads none the OS user can change. A
// new `local up` directory and its config are root's.
TEST_F(HostileTest, ConfigTheOsUserCouldChangeIsRefused) {
  write_config(1);
  auto postgres = lookup_os_user(config_.os_user);
  ASSERT_TRUE(postgres);
  ASSERT_EQ(chown(config_path_.c_str(), postgres->uid, postgres->gid), 0);
  CommandOutput owned = tandem({"status"});
  EXPECT_EQ(owned.exit_code, 1);
  EXPECT_NE(owned.output.find("refusing " + config_path_ +
                              ": tandem runs as root and its owner "
                              "could change it"),
            std::string::npos)
      << owned.output;
  ASSERT_EQ(chown(config_path_.c_str(), 0, 0), 0);
  ASSERT_EQ(chmod(config_path_.c_str(), 0666), 0);
  CommandOutput writable = tandem({"status"});
  EXPECT_EQ(writable.exit_code, 1);
  EXPECT_NE(writable.output.find("and others could change it"), std::string::npos)
      << writable.output;
  std::filesystem::remove(config_path_);

  // Stopped before anything but the config was written (no PostgreSQL programs there).
  std::string fresh = dir_ + "/fresh";
  CommandOutput up =
      tandem({"local", "up", "--dir", fresh, "--manual", "--pg-bin", "/nonexistent"});
  EXPECT_EQ(up.exit_code, 1) << up.output;
  struct stat info {};
  ASSERT_EQ(stat(fresh.c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, 0u) << "a new cluster directory must be root's when root makes it";
  EXPECT_TRUE(std::filesystem::is_empty(fresh)) << "the config was left behind";
}

// Point 3: root signals only the node's agent, whatever pid the lock file names.
TEST_F(HostileTest, CrashDoesNotKillThePidALockFileNames) {
  write_config(1, {}, /*agents=*/true);
  std::filesystem::create_directories(config_.socket_dir);
  pid_t victim = fork();
  if (victim == 0) {
    execl("/bin/sleep", "sleep", "300", nullptr);
    _exit(127);
  }
  ASSERT_GT(victim, 0);
  std::string lock = config_.socket_dir + "/node1.agent.lock";
  int fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX), 0);
  std::string pid = std::to_string(victim) + "\n";
  ASSERT_EQ(write(fd, pid.data(), pid.size()), static_cast<ssize_t>(pid.size()));
  CommandOutput crash = tandem({"local", "crash", "node1"});
  EXPECT_EQ(crash.exit_code, 1) << crash.output;
  EXPECT_NE(crash.output.find("names pid " + std::to_string(victim) +
                              ", which is not the agent of node1"),
            std::string::npos)
      << crash.output;
  EXPECT_TRUE(process_alive(victim)) << "tandem killed pid " << victim;
  close(fd);
  kill(victim, SIGKILL);
  waitpid(victim, nullptr, 0);
}

// Point 4: `local up` in a directory another user owns or anyone may write.
TEST_F(HostileTest, LocalUpRefusesDirectoriesOthersCanWrite) {
  std::string theirs = dir_ + "/theirs";
  std::filesystem::create_directory(theirs);
  ASSERT_EQ(chown(theirs.c_str(), 65534, 65534), 0);  // nobody
  CommandOutput owned = tandem({"local", "up", "--dir", theirs, "--manual"});
  EXPECT_EQ(owned.exit_code, 1);
  EXPECT_NE(owned.output.find("refusing " + theirs + ": it belongs to nobody"), std::string::npos)
      << owned.output;
  EXPECT_TRUE(std::filesystem::is_empty(theirs));

  std::string open = dir_ + "/open";
  std::filesystem::create_directory(open);
  ASSERT_EQ(chmod(open.c_str(), 0777), 0);
  CommandOutput writable = tandem({"local", "up", "--dir", open, "--manual"});
  EXPECT_EQ(writable.exit_code, 1);
  EXPECT_NE(writable.output.find("refusing " + open + ": it may be written by anyone"),
            std::string::npos)
      << writable.output;
  EXPECT_TRUE(std::filesystem::is_empty(open));
  CommandOutput below = tandem({"local", "up", "--dir", theirs + "/cluster", "--manual"});
  EXPECT_NE(below.output.find(theirs + " above it belongs to nobody"), std::string::npos)
      << below.output;
}

// Point 6: two spellings of a directory, or a link to another node's, are one directory.
TEST_F(HostileTest, AliasedDataDirectoriesAreRefused) {
  write_config(2, [&](ClusterConfig& config) { config.nodes[1].data_dir = dir_ + "/./node1/"; });
  CommandOutput spelled = tandem({"status"});
  EXPECT_EQ(spelled.exit_code, 1);
  EXPECT_NE(spelled.output.find("node1 and node2 have the same data_dir " + dir_ + "/node1"),
            std::string::npos)
      << spelled.output;

  std::filesystem::create_directories(dir_ + "/node1");
  std::filesystem::create_directory_symlink(dir_ + "/node1", dir_ + "/alias");
  write_config(2, [&](ClusterConfig& config) { config.nodes[2].data_dir = dir_ + "/alias"; });
  CommandOutput linked = tandem({"status"});
  EXPECT_EQ(linked.exit_code, 1);
  EXPECT_NE(linked.output.find("have the same data_dir " + dir_ + "/node1"), std::string::npos)
      << linked.output;

  write_config(2, [&](ClusterConfig& config) { config.nodes[2].data_dir = dir_ + "/node1/n3"; });
  CommandOutput nested = tandem({"status"});
  EXPECT_EQ(nested.exit_code, 1);
  EXPECT_NE(nested.output.find("the data_dir of node3 (" + dir_ +
                               "/node1/n3) is inside that of "
                               "node1"),
            std::string::npos)
      << nested.output;
  std::filesystem::remove(config_path_);  // nothing to stop
}

// Point 7: the small ones that need no running cluster.
TEST_F(HostileTest, CarelessOperatorsAreToldWhatIsWrong) {
  CommandOutput bogus = tandem({"bogus"});
  EXPECT_EQ(bogus.exit_code, 2);
  EXPECT_NE(bogus.output.find("unknown command 'bogus' (commands: init, clone, status"),
            std::string::npos)
      << bogus.output;

  // A host that is not an address of this machine (TEST-NET-1).
  write_config(1, [](ClusterConfig& config) { config.nodes[0].host = "192.0.2.1"; });
  CommandOutput foreign = tandem({"init", "node1"});
  EXPECT_EQ(foreign.exit_code, 1);
  EXPECT_NE(foreign.output.find("host 192.0.2.1 of node1 is not an address of this machine"),
            std::string::npos)
      << foreign.output;

  // `local up` again with other options: refused, not ignored.
  write_config(1);
  CommandOutput again =
      tandem({"local", "up", "--dir", dir_, "--standbys", "3", "--base-port", "6000", "--manual"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("--standbys (1 there), --base-port (" + std::to_string(base_port_) +
                              " there) differ from it"),
            std::string::npos)
      << again.output;

  // A store that cannot be read is said so, not only "no primary".
  write_config(1, {}, /*agents=*/true);
  std::ofstream(config_.store_file) << "this is not an SQLite database, it was overwritten\n";
  CommandOutput status = tandem({"status"});
  EXPECT_NE(
      status.output.find("the coordination store (" + config_.store_file + ") cannot be read"),
      std::string::npos)
      << status.output;
  std::filesystem::remove(config_path_);
}

// Point 7: a `local up` that fails removes what it created and says why.
TEST_F(HostileTest, FailedLocalUpLeavesNothingBehind) {
  std::string fresh = dir_ + "/fresh";
  int port = find_free_ports(4);
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{.sin_family = AF_INET, .sin_port = htons(static_cast<uint16_t>(port + 1))};
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  CommandOutput busy = tandem({"local", "up", "--dir", fresh, "--standbys", "1", "--base-port",
                               std::to_string(port), "--manual"});
  close(listener);
  EXPECT_EQ(busy.exit_code, 1);
  EXPECT_NE(busy.output.find("port 127.0.0.1:" + std::to_string(port + 1) +
                             " of node2 is already in use"),
            std::string::npos)
      << busy.output;
  for (const char* name : {"tandem.yaml", "api.token", "tandem.pgpass", "node1"}) {
    EXPECT_FALSE(std::filesystem::exists(fresh + "/" + name)) << name;
  }

  // A full disk: a 24 MB file system cannot hold initdb's first WAL segment and catalog.
  std::string small = dir_ + "/small";
  std::filesystem::create_directory(small);
  // Fails, never skips: CI runs as root, where a tmpfs mounts.
  ASSERT_EQ(mount("tmpfs", small.c_str(), "tmpfs", 0, "size=24m,mode=0755"), 0)
      << "the full disk needs a tmpfs, and this machine refuses to mount one: " << strerror(errno);
  CommandOutput full = tandem({"local", "up", "--dir", small, "--standbys", "0", "--base-port",
                               std::to_string(port + 2), "--manual"});
  EXPECT_EQ(full.exit_code, 1);
  EXPECT_NE(full.output.find("No space left on device"), std::string::npos) << full.output;
  EXPECT_NE(full.output.find("removed what it created"), std::string::npos) << full.output;
  for (const char* name : {"tandem.yaml", "api.token", "tandem.pgpass", "node1", "run"}) {
    EXPECT_FALSE(std::filesystem::exists(small + "/" + name)) << name << "\n" << full.output;
  }
  EXPECT_EQ(umount(small.c_str()), 0);
}

// Point 7: the programs tandem runs die with it (`kill -9` of `tandem clone` left pg_basebackup
// copying).
TEST_F(HostileTest, ChildrenDieWithTandem) {
  pid_t runner = fork();
  if (runner == 0) {
    // Stands for tandem: it runs a long program through the process runner.
    SystemProcessRunner processes;
    (void)processes.run(
        {.program = "/bin/sleep", .args = {"300"}, .timeout = std::chrono::minutes(10)});
    _exit(0);
  }
  // The grandchild's pid, found through /proc: the child of `runner`.
  pid_t child = 0;
  ASSERT_TRUE(eventually([&] {
    std::ifstream children("/proc/" + std::to_string(runner) + "/task/" + std::to_string(runner) +
                           "/children");
    return static_cast<bool>(children >> child) && child > 0;
  }));
  ASSERT_TRUE(eventually(
      [&] { return contents("/proc/" + std::to_string(child) + "/comm") == "sleep\n"; }));
  kill(runner, SIGKILL);
  waitpid(runner, nullptr, 0);
  EXPECT_TRUE(eventually([&] { return !process_alive(child); }, std::chrono::seconds(5)))
      << "the child outlived tandem";
  if (process_alive(child)) kill(child, SIGKILL);
}

// The pids of processes whose command line holds every one of `words`.
std::vector<pid_t> processes_with(const std::vector<std::string>& words) {
  std::vector<pid_t> found;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string command = contents(entry.path().string() + "/cmdline");
    bool all = !command.empty();
    for (const std::string& word : words) all = all && command.find(word) != std::string::npos;
    if (all) found.push_back(std::stoi(name));
  }
  return found;
}

// The issue's own case: `kill -9` of `tandem clone` must not leave pg_basebackup copying.
TEST_F(HostileTest, KilledCloneLeavesNoBaseBackupRunning) {
  write_config(1);
  tandem_ok({"init", "node1"});
  // Enough data that the copy is still running when it is caught.
  exec("node1",
       "CREATE TABLE filler AS SELECT repeat('x', 2000) AS pad "
       "FROM generate_series(1, 100000)");
  // On a terminal, as a person runs it: pg_basebackup's progress goes to the terminal, so its
  // output pipe closing with tandem does not stop it (as it would without a terminal).
  int terminal = -1;
  pid_t clone = forkpty(&terminal, nullptr, nullptr, nullptr);
  if (clone == 0) {
    execl(TANDEM_BINARY, TANDEM_BINARY, "-c", config_path_.c_str(), "clone", "node2", nullptr);
    _exit(127);
  }
  ASSERT_GT(clone, 0);
  std::thread reader([terminal] {
    char buffer[4096];
    while (read(terminal, buffer, sizeof buffer) > 0) {
    }
  });
  std::vector<pid_t> copying, senders;
  bool caught = eventually(
      [&] {
        copying = processes_with({"pg_basebackup", node("node2").data_dir});
        if (copying.empty()) return false;
        // The primary stops sending: pg_basebackup waits, alive, for data that does not come.
        senders = processes_with({"postgres: walsender"});
        for (pid_t pid : senders) kill(pid, SIGSTOP);
        return true;
      },
      std::chrono::seconds(60));
  kill(clone, SIGKILL);
  waitpid(clone, nullptr, 0);
  EXPECT_TRUE(caught) << "pg_basebackup never ran";  // not ASSERT: the reader must be joined
  EXPECT_TRUE(eventually(
      [&] {
        return processes_with({"pg_basebackup", node("node2").data_dir}).empty();
      },
      std::chrono::seconds(5)))
      << "pg_basebackup outlived `tandem clone`";
  for (pid_t pid : processes_with({"pg_basebackup", node("node2").data_dir})) kill(pid, SIGKILL);
  for (pid_t pid : senders) kill(pid, SIGCONT);
  close(terminal);
  reader.join();
}

}  // namespace
}  // namespace tandem::testing
