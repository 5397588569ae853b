// `tandem adopt` (issue 17): a cluster built by hand with the walk-through's literal commands —
// initdb without checksums, repl_user, test_app and table foo, pg_basebackup -R --create-slot —
// is taken over in place while a probe writes; then a host crash fails it over and the old
// primary rejoins by pg_rewind, with every row of foo intact.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "bench/local_queries.h"
#include "bench/write_probe.h"
#include "dcs/cluster_layout.h"
#include "dcs/sqlite_store.h"
#include "local/local_agents.h"
#include "local_cluster_fixture.h"
#include "pg/postmaster.h"
#include "proc/os_user.h"
#include "proc/process_runner.h"

namespace tandem::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kPgBin[] = "/usr/lib/postgresql/15/bin";

class AdoptTest : public LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    port_ = find_free_ports(4);
    // The DBA's directory: the postgres OS user's, as the walk-through's are.
    pg_dir_ = dir_ + "/pg";
    ASSERT_NO_FATAL_FAILURE(make_postgres_dir(pg_dir_));
    // What the test knows before tandem does: the servers it builds, named as adopt will name
    // them (the primary by its directory, the standby by its slot), so that the fixture's SQL
    // helpers and the write probe reach them before and after.
    config_.socket_dir = pg_dir_;
    config_.nodes = {
        {.name = "primary", .port = port_, .data_dir = pg_dir_ + "/primary"},
        {.name = "localhost_standby", .port = port_ + 1, .data_dir = pg_dir_ + "/standby"}};
  }

  void TearDown() override {
    // Not adopted: the servers the test started by hand are stopped by hand.
    if (!std::filesystem::exists(config_path_)) stop_by_hand(config_, pg_dir_);
    LocalClusterTest::TearDown();
  }

  static std::string pg(const std::string& program) { return std::string(kPgBin) + "/" + program; }

  std::string as_postgres(const std::string& command, bool may_fail = false) {
    return run_as_postgres(pg_dir_, command, may_fail);
  }

  std::string psql(int port, const std::string& database, const std::string& sql,
                   bool may_fail = false) {
    return as_postgres(fmt::format("psql -X -h {} -p {} -d {} -v ON_ERROR_STOP=1 -Atq -c \"{}\"",
                                   pg_dir_, port, database, sql),
                       may_fail);
  }

  // Rows 1-6 of shared/SCENARIO.md with its own commands (ports of the test's choosing, the
  // socket in the test's directory). `initdb_auth`: extra initdb options.
  void build_by_hand(const std::string& initdb_auth = "") {
    std::string primary = pg_dir_ + "/primary";
    as_postgres(pg("initdb") + " --no-locale --encoding=UTF-8 " + initdb_auth + " -D " + primary);
    ASSERT_FALSE(HasFailure());
    std::ofstream(primary + "/postgresql.conf", std::ios::app)
        << "port = " << port_ << "\nunix_socket_directories = '" << pg_dir_
        << "'\nlisten_addresses = '127.0.0.1'\nwal_level = replica\nmax_wal_senders = 10\n"
           "max_replication_slots = 10\nhot_standby = on\n";
    as_postgres(pg("pg_ctl") + " -D " + primary + " -l " + pg_dir_ + "/primary.log -w start");
    ASSERT_FALSE(HasFailure());
    psql(port_, "postgres",
         "CREATE USER repl_user LOGIN REPLICATION PASSWORD 'repl_secret'; "
         "CREATE USER test_app LOGIN PASSWORD 'app_secret'");
    psql(port_, "postgres", "CREATE DATABASE test_app OWNER test_app");
    psql(port_, "test_app",
         "SET ROLE test_app; CREATE TABLE foo (i int, v varchar(100)); "
         "INSERT INTO foo VALUES (1, 'hoge'), (2, 'fuga')");
    std::string standby = pg_dir_ + "/standby";
    as_postgres(fmt::format(
        "PGPASSWORD=repl_secret {} -h 127.0.0.1 -p {} -U repl_user -D {} -X stream --progress "
        "-R --create-slot --slot=localhost_standby --checkpoint=fast",
        pg("pg_basebackup"), port_, standby));
    std::ofstream(standby + "/postgresql.conf", std::ios::app) << "port = " << port_ + 1 << "\n";
    as_postgres(pg("pg_ctl") + " -D " + standby + " -l " + pg_dir_ + "/standby.log -w start");
    ASSERT_TRUE(eventually([&] {
      return psql(port_, "postgres", "SELECT state FROM pg_stat_replication", true) ==
             "streaming\n";
    }));
  }

  // tandem adopt of `data_dirs` (the primary and the standby unless given) into the test's
  // directory, its config at the fixture's path.
  CommandOutput adopt(std::vector<std::string> data_dirs = {}) {
    if (data_dirs.empty()) data_dirs = {pg_dir_ + "/primary", pg_dir_ + "/standby"};
    std::vector<std::string> args = {"adopt", "--dir", dir_, "--api-base-port",
                                     std::to_string(port_ + 2)};
    args.insert(args.end(), data_dirs.begin(), data_dirs.end());
    return tandem(args);
  }

  std::string roles() {
    return psql(config_.nodes[0].port, "postgres",
                "SELECT string_agg(rolname || '=' || coalesce(rolpassword, ''), ',' ORDER BY "
                "rolname) FROM pg_authid WHERE rolname IN ('repl_user', 'test_app')");
  }

  std::string rows(const std::string& node) {
    return value(node, "SELECT string_agg(i || ':' || v, ',' ORDER BY i) AS v FROM foo");
  }

  int port_ = 0;
  std::string pg_dir_;
};

TEST_F(AdoptTest, TheWalkthroughsClusterIsAdoptedInPlaceThenFailsOverAndRejoinsByRewind) {
  build_by_hand();
  if (HasFailure()) return;
  std::string roles_before = roles();
  // Marks in both data directories: a copy (a clone, a reclone) would not keep them.
  for (const char* dir : {"/primary", "/standby"}) {
    as_postgres("touch " + pg_dir_ + dir + "/adopt-mark");
  }
  bench::WriteProbe probe(bench::any_primary_conninfo(config_), milliseconds(20));
  probe.start();

  CommandOutput adopted = adopt();
  ASSERT_EQ(adopted.exit_code, 0) << adopted.output;
  config_ = config_on_disk();
  EXPECT_NE(adopted.output.find("without data checksums"), std::string::npos) << adopted.output;
  EXPECT_EQ(value("primary", "SELECT current_setting('wal_log_hints') AS v"), "on");
  EXPECT_EQ(value("localhost_standby", "SELECT current_setting('wal_log_hints') AS v"), "on");
  EXPECT_EQ(value("primary", "SELECT current_setting('data_checksums') AS v"), "off");
  EXPECT_TRUE(eventually([&] { return bench::streams(config_, "primary", "localhost_standby"); }));
  EXPECT_EQ(value("primary",
                  "SELECT active::text AS v FROM pg_replication_slots WHERE slot_name = "
                  "'localhost_standby'"),
            "true")
      << "the walk-through's slot is kept, and used";
  EXPECT_EQ(roles(), roles_before) << "roles and passwords are kept";
  EXPECT_TRUE(std::filesystem::exists(pg_dir_ + "/primary/adopt-mark"));
  EXPECT_TRUE(std::filesystem::exists(pg_dir_ + "/standby/adopt-mark")) << "no data was copied";
  std::string auto_conf = read_file(pg_dir_ + "/standby/postgresql.auto.conf").value_or("");
  EXPECT_EQ(auto_conf.find("primary_conninfo"), std::string::npos) << auto_conf;
  EXPECT_EQ(auto_conf.find("repl_secret"), std::string::npos) << "no password left there";
  // Writes went on throughout, but for the primary's one restart.
  probe.stop();
  std::optional<std::set<long>> missing = probe.missing_on(bench::any_primary_conninfo(config_));
  ASSERT_TRUE(missing);
  EXPECT_TRUE(missing->empty()) << missing->size() << " acknowledged writes lost";
  long longest_gap_ms = 0;
  std::optional<std::chrono::system_clock::time_point> last_ok;
  for (const bench::WriteAttempt& attempt : probe.attempts()) {
    if (!attempt.acknowledged) continue;
    if (last_ok) {
      longest_gap_ms = std::max<long>(
          longest_gap_ms,
          std::chrono::duration_cast<milliseconds>(attempt.answered_at - *last_ok).count());
    }
    last_ok = attempt.answered_at;
  }
  std::cout << "adoption: the longest time without an acknowledged write: " << longest_gap_ms
            << " ms (" << probe.acknowledged().size() << " writes)\n";

  // pg_basebackup -R's lines are kept aside, not lost.
  std::string kept =
      read_file(pg_dir_ + "/standby/postgresql.auto.conf.before-tandem").value_or("");
  EXPECT_NE(kept.find("primary_slot_name = 'localhost_standby'"), std::string::npos) << kept;

  // Run again: nothing left to do, nothing restarted.
  auto started_at = [&](const std::string& node) {
    return value(node, "SELECT pg_postmaster_start_time()::text AS v");
  };
  std::string primary_started = started_at("primary");
  std::string standby_started = started_at("localhost_standby");
  CommandOutput again = adopt();
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("knows this cluster already"), std::string::npos) << again.output;
  EXPECT_EQ(started_at("primary"), primary_started);
  EXPECT_EQ(started_at("localhost_standby"), standby_started);
  // Into another directory, the same servers: refused, they are tandem's already.
  SystemProcessRunner runner;
  auto elsewhere = runner.run(
      {.program = TANDEM_BINARY,
       .args = {"-c", dir_ + "/other.yaml", "adopt", pg_dir_ + "/primary", pg_dir_ + "/standby"},
       .working_dir = dir_});
  ASSERT_TRUE(elsewhere);
  EXPECT_EQ(elsewhere->exit_code, 1) << elsewhere->output;
  EXPECT_NE(elsewhere->output.find("tandem manages it already"), std::string::npos)
      << elsewhere->output;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/other.yaml"));

  // A host crash: the standby takes over; the old primary comes back by pg_rewind.
  exec("primary", "INSERT INTO foo VALUES (3, 'before the crash')");
  ASSERT_TRUE(
      eventually([&] { return rows("localhost_standby").find("3:") != std::string::npos; }));
  tandem_ok({"local", "crash", "primary"});
  ASSERT_TRUE(eventually([&] { return bench::writable_node(config_) == "localhost_standby"; },
                         std::chrono::seconds(30)));
  exec("localhost_standby", "INSERT INTO foo VALUES (4, 'standby')");
  tandem_ok({"local", "start", "primary"});
  ASSERT_TRUE(eventually([&] { return bench::streams(config_, "localhost_standby", "primary"); },
                         std::chrono::seconds(60)));
  std::string agent_log = read_file(config_.log_dir + "/primary.agent.log").value_or("");
  EXPECT_NE(agent_log.find("pg_rewind primary from localhost_standby"), std::string::npos)
      << agent_log;
  EXPECT_EQ(agent_log.find("clone"), std::string::npos) << "rejoined by rewind, not a copy";
  EXPECT_EQ(rows("localhost_standby"), "1:hoge,2:fuga,3:before the crash,4:standby");
  EXPECT_TRUE(eventually([&] { return rows("primary") == rows("localhost_standby"); }));
}

// An adoption interrupted (its command killed) at each of its steps: the servers prepared
// (tandem.conf written, nothing in the store yet), the cluster recorded in the store (no agent
// yet), the standby's agent started (the primary not yet restarted). Run again, it finishes
// the job: every node streams from the primary under its agent, the rows and the data kept.
class AdoptInterruptedTest : public AdoptTest, public ::testing::WithParamInterface<int> {
 protected:
  // The config the adoption wrote so far, if any.
  std::optional<ClusterConfig> written() {
    auto text = read_file(config_path_);
    if (!text) return std::nullopt;
    auto config = parse_config(*text, dir_);
    if (!config) return std::nullopt;
    return *config;
  }
  bool reached(int step) {
    if (step == 0) return std::filesystem::exists(pg_dir_ + "/primary/tandem.conf");
    auto config = written();
    if (!config) return false;
    if (step == 2) return running_agent(*config, config->nodes[1]).has_value();
    SystemClock clock;
    ClusterLayout layout(config->name);
    auto store = SqliteStore::open(config->store_file, clock);
    if (!store) return false;
    auto snapshot = (*store)->read(layout.initialize());
    return snapshot && snapshot->find(layout.initialize()) != nullptr;
  }
};

TEST_P(AdoptInterruptedTest, FinishesWhenRunAgain) {
  build_by_hand();
  if (HasFailure()) return;
  std::string mark = pg_dir_ + "/standby/adopt-mark";
  as_postgres("touch " + mark);
  std::vector<std::string> args = {TANDEM_BINARY,
                                   "-c",
                                   config_path_,
                                   "adopt",
                                   "--dir",
                                   dir_,
                                   "--api-base-port",
                                   std::to_string(port_ + 2),
                                   pg_dir_ + "/primary",
                                   pg_dir_ + "/standby"};
  pid_t child = fork();
  if (child == 0) {
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    int null = open("/dev/null", O_WRONLY);
    if (chdir(dir_.c_str()) != 0 || null < 0) _exit(127);
    dup2(null, 1);
    dup2(null, 2);
    execv(TANDEM_BINARY, argv.data());
    _exit(127);
  }
  ASSERT_GT(child, 0);
  // Killed the moment the step is reached (polled every millisecond).
  int status = 0;
  bool ended = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!reached(GetParam()) && std::chrono::steady_clock::now() < deadline) {
    if (waitpid(child, &status, WNOHANG) == child) {
      ended = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!ended) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
  }
  ASSERT_FALSE(ended) << "the adoption ended (status " << status << ") before the step";
  CommandOutput again = adopt();
  ASSERT_EQ(again.exit_code, 0) << again.output;
  config_ = config_on_disk();
  EXPECT_TRUE(eventually([&] { return bench::streams(config_, "primary", "localhost_standby"); }));
  EXPECT_TRUE(running_agent(config_, config_.nodes[0]) && running_agent(config_, config_.nodes[1]));
  EXPECT_EQ(rows("primary"), "1:hoge,2:fuga");
  EXPECT_TRUE(eventually([&] { return rows("localhost_standby") == "1:hoge,2:fuga"; }));
  EXPECT_TRUE(std::filesystem::exists(mark)) << "no data was copied";
  std::cout << "adoption killed at step " << GetParam() << ", run again: " << again.output;
}

std::string step_name(const ::testing::TestParamInfo<int>& info) {
  static const char* const kNames[] = {"ServersPrepared", "RecordedInStore",
                                       "StandbysAgentStarted"};
  return kNames[info.param];
}
INSTANTIATE_TEST_SUITE_P(Steps, AdoptInterruptedTest, ::testing::Values(0, 1, 2), step_name);

TEST_F(AdoptTest, AServerThatCannotBeAdoptedIsRefusedAndNothingChanges) {
  build_by_hand();
  if (HasFailure()) return;
  std::string conf_before = read_file(pg_dir_ + "/primary/postgresql.conf").value_or("");
  std::string hba_before = read_file(pg_dir_ + "/primary/pg_hba.conf").value_or("");
  struct Case {
    std::vector<std::string> dirs;
    std::string says;
  };
  std::vector<Case> cases = {
      {{pg_dir_ + "/primary"}, "at least one standby"},
      {{pg_dir_ + "/standby"}, "at least one standby"},
      {{pg_dir_ + "/primary", pg_dir_ + "/primary"}, "both run as primaries"},
      {{pg_dir_ + "/primary", dir_}, "not a PostgreSQL data directory"},
      {{pg_dir_ + "/primary", dir_ + "/nowhere"}, "is not a directory"},
  };
  for (const Case& each : cases) {
    CommandOutput refused = adopt(each.dirs);
    EXPECT_EQ(refused.exit_code, 1) << refused.output;
    EXPECT_NE(refused.output.find(each.says), std::string::npos) << refused.output;
    EXPECT_FALSE(std::filesystem::exists(config_path_)) << refused.output;
  }
  // A stopped standby.
  as_postgres(pg("pg_ctl") + " -D " + pg_dir_ + "/standby -w stop");
  CommandOutput stopped = adopt();
  EXPECT_EQ(stopped.exit_code, 1) << stopped.output;
  EXPECT_NE(stopped.output.find("is not running"), std::string::npos) << stopped.output;
  EXPECT_FALSE(std::filesystem::exists(config_path_));
  EXPECT_EQ(read_file(pg_dir_ + "/primary/postgresql.conf").value_or(""), conf_before);
  EXPECT_EQ(read_file(pg_dir_ + "/primary/pg_hba.conf").value_or(""), hba_before);
  EXPECT_FALSE(std::filesystem::exists(pg_dir_ + "/primary/tandem.conf"));
}

// Servers made as Debian's pg_createcluster makes them (peer on the socket, SCRAM over TCP):
// root cannot connect as the superuser, so adopt adds tandem's one line, and says so.
TEST_F(AdoptTest, ServersThatRefuseRootGetTandemsSuperuserLineAndNothingElse) {
  build_by_hand("--auth-local=peer --auth-host=scram-sha-256");
  if (HasFailure()) return;
  std::string hba_before = read_file(pg_dir_ + "/primary/pg_hba.conf").value_or("");
  CommandOutput adopted = adopt();
  ASSERT_EQ(adopted.exit_code, 0) << adopted.output;
  config_ = config_on_disk();
  EXPECT_NE(adopted.output.find("added \"local all postgres peer map=tandem\""), std::string::npos)
      << adopted.output;
  std::string hba = read_file(pg_dir_ + "/primary/pg_hba.conf").value_or("");
  EXPECT_TRUE(hba.ends_with(hba_before)) << "the DBA's own lines are kept, after tandem's";
  EXPECT_TRUE(eventually([&] { return bench::streams(config_, "primary", "localhost_standby"); }));
}

}  // namespace
}  // namespace tandem::testing
