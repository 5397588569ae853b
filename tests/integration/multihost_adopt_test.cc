// `tandem adopt --node` across hosts (issue 17.1): a cluster built by hand with the
// walk-through's commands — initdb without checksums, repl_user, test_app and table foo,
// pg_basebackup -R --create-slot — on three hosts in network namespaces, every one on port 5432,
// with a 3-member etcd (multihost_fixture.h). Adopted host by host while a probe writes: a
// standby first is refused (the store does not know the cluster), the primary's adoption is
// interrupted while it waits for the standbys and run again, the two standbys are adopted at
// once. Then the primary's host crashes, another node takes over, and once the host is back the
// old primary rejoins by pg_rewind; the rows of foo are intact.
#include "dcs/cluster_layout.h"
#include "local/local_agents.h"
#include "multihost_fixture.h"
#include "ops/store_access.h"

namespace tandem::testing {
namespace {

constexpr char kPgBin[] = "/usr/lib/postgresql/15/bin";

class MultiHostAdoptTest : public MultiHostTest {
 protected:
  MultiHostAdoptTest() : MultiHostTest(3, 0, /*start_agents=*/false) {}

  void adjust(ClusterConfig& config) override {
    config.replication.user = "repl_user";
    for (int index = 0; index < nodes_; ++index) {
      config.nodes[index].data_dir = fmt::format("{}/pg/pg{}", dir_, index + 1);
    }
  }

  void TearDown() override {
    // The agents adopt started (detached, each in its host's namespaces), found by the lock in
    // their host's socket directory; then the servers built by hand, if never adopted.
    for (int index = 0; index < nodes_; ++index) {
      ClusterConfig host = config_;
      host.socket_dir = host_socket_dir(index);
      (void)kill_agent(host, config_.nodes[index], SIGTERM);
    }
    for (const NodeConfig& node : config_.nodes) {
      eventually([&] { return !running_postmaster(node.data_dir); }, std::chrono::seconds(20));
    }
    for (const NodeConfig& node : config_.nodes) {
      if (running_postmaster(node.data_dir)) {
        run_as_postgres(dir_,
                        fmt::format("{}/pg_ctl -D {} -m immediate -w stop", kPgBin, node.data_dir));
      }
    }
    MultiHostTest::TearDown();
  }

  // `command` as the postgres OS user on host `host` (its network namespace).
  std::string on_host(int host, const std::string& command) {
    std::string out;
    EXPECT_TRUE(run_in_netns(network_->netns(host), [&] { out = run_as_postgres(dir_, command); }));
    return out;
  }
  std::string psql(const std::string& database, const std::string& sql) {
    return on_host(
        0, fmt::format("{}/psql -X -h {} -p 5432 -d {} -v ON_ERROR_STOP=1 -Atq -c \"{}\"", kPgBin,
                       host_socket_dir(0), database, sql));
  }

  // shared/SCENARIO.md's rows 1-6, a host for each server: the primary on host 0, a standby of
  // it on hosts 1 and 2, each listening on its host's address, port 5432.
  void build_by_hand() {
    ASSERT_NO_FATAL_FAILURE(make_postgres_dir(dir_ + "/pg"));  // the DBA's, as the walk-through's
    std::string primary = config_.nodes[0].data_dir;
    on_host(0, fmt::format("{}/initdb --no-locale --encoding=UTF-8 -D {}", kPgBin, primary));
    ASSERT_FALSE(HasFailure());
    std::ofstream(primary + "/postgresql.conf", std::ios::app)
        << "port = 5432\nunix_socket_directories = '" << host_socket_dir(0)
        << "'\nlisten_addresses = '" << network_->address(0)
        << "'\nwal_level = replica\nmax_wal_senders = 10\nmax_replication_slots = 10\n"
           "hot_standby = on\n";
    std::ofstream hba(primary + "/pg_hba.conf", std::ios::app);
    for (int index = 0; index < nodes_; ++index) {
      hba << "host replication repl_user " << network_->address(index) << "/32 scram-sha-256\n";
    }
    hba.close();
    on_host(0, fmt::format("{}/pg_ctl -D {} -l {}/pg/pg1.log -w start", kPgBin, primary, dir_));
    ASSERT_FALSE(HasFailure());
    psql("postgres",
         "CREATE USER repl_user LOGIN REPLICATION PASSWORD 'repl_secret'; "
         "CREATE USER test_app LOGIN PASSWORD 'app_secret'");
    psql("postgres", "CREATE DATABASE test_app OWNER test_app");
    psql("test_app",
         "SET ROLE test_app; CREATE TABLE foo (i int, v varchar(100)); "
         "INSERT INTO foo VALUES (1, 'hoge'), (2, 'fuga')");
    for (int index = 1; index < nodes_; ++index) {
      const NodeConfig& node = config_.nodes[index];
      on_host(index, fmt::format("PGPASSWORD=repl_secret {}/pg_basebackup -h {} -p 5432 -U "
                                 "repl_user -D {} -X stream -R --create-slot --slot={} "
                                 "--checkpoint=fast",
                                 kPgBin, network_->address(0), node.data_dir, node.name));
      ASSERT_FALSE(HasFailure());
      std::ofstream(node.data_dir + "/postgresql.conf", std::ios::app)
          << "unix_socket_directories = '" << host_socket_dir(index) << "'\nlisten_addresses = '"
          << network_->address(index) << "'\n";
      on_host(index, fmt::format("{}/pg_ctl -D {} -l {}/pg/pg{}.log -w start", kPgBin,
                                 node.data_dir, dir_, index + 1));
      ASSERT_FALSE(HasFailure());
    }
    ASSERT_TRUE(eventually([&] {
      return psql("postgres",
                  "SELECT count(*) FROM pg_stat_replication WHERE state = "
                  "'streaming'") == "2\n";
    }));
  }

  // `tandem adopt --node NAME` on the node's host, as its agent runs there (its socket
  // directory mounted over the shared one): the command line, to run now or in the background.
  ChildOptions adopt_options(int host, const std::string& log) {
    return {.program = "/usr/sbin/ip",
            .args = {"netns", "exec", network_->netns(host), "/bin/sh", "-c",
                     "mount --bind \"$1\" \"$2\" && exec \"$3\" -c \"$4\" adopt --node \"$5\"",
                     "sh", host_socket_dir(host), config_.socket_dir, TANDEM_BINARY, config_path_,
                     config_.nodes[host].name},
            .log_file = log};
  }
  ProcessResult adopt(int host) {
    ChildOptions options = adopt_options(host, "");
    SystemProcessRunner runner;
    auto out = runner.run(
        {.program = options.program, .args = options.args, .timeout = std::chrono::minutes(5)});
    if (!out) return ProcessResult{.exit_code = -1, .output = out.error().message};
    std::cout << "$ tandem adopt --node " << config_.nodes[host].name << " (host " << host << ")\n"
              << out->output;
    return *out;
  }
  static std::string read(const std::string& path) {
    std::ifstream file(path);
    return std::string(std::istreambuf_iterator<char>(file), {});
  }

  bool store_knows_cluster() {
    bool known = false;
    run_in_netns(network_->netns(nodes_), [&] {  // an etcd member's host
      SystemClock clock;
      auto store = open_cluster_store(config_, clock);
      if (!store) return;
      ClusterLayout layout(config_.name);
      auto snapshot = (*store)->read(layout.initialize());
      known = snapshot && snapshot->find(layout.initialize()) != nullptr;
    });
    return known;
  }
  // reach_ reaches test_app's database as the superuser.
  std::string app_query(const std::string& node, const std::string& sql) {
    auto connection =
        Connection::open(fmt::format("host={} port={} dbname=test_app user={}", reach_.socket_dir,
                                     reach_.find_node(node)->port, config_.superuser));
    if (!connection) return "";
    auto result = connection->query(sql);
    return result && result->size() > 0 ? result->text(0, "v") : "";
  }
};

TEST_F(MultiHostAdoptTest, TheWalkthroughsClusterOnThreeHostsIsAdoptedHostByHostThenFailsOver) {
  ASSERT_NO_FATAL_FAILURE(build_by_hand());
  std::string roles_before =
      psql("postgres",
           "SELECT string_agg(rolname || '=' || coalesce(rolpassword, ''), ',' ORDER BY "
           "rolname) FROM pg_authid WHERE rolname IN ('repl_user', 'test_app')");
  // What the DBA writes before adopting: the replication role's password, in the password file
  // every host shares (tandem.yaml is the fixture's, the same on every host).
  {
    std::ofstream(config_.password_file) << "*:*:*:repl_user:repl_secret\n";
    auto postgres = lookup_os_user(config_.os_user);
    ASSERT_TRUE(postgres);
    ASSERT_EQ(chown(config_.password_file.c_str(), postgres->uid, postgres->gid), 0);
    ASSERT_EQ(chmod(config_.password_file.c_str(), 0600), 0);
  }
  WriteProbe probe(node_conninfo(reach_, "node1"), milliseconds(20));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 10; }));

  // A standby first: refused, nothing changed.
  ProcessResult early = adopt(1);
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_NE(early.output.find("adopt its primary first"), std::string::npos) << early.output;
  EXPECT_NE(early.output.find("nothing changed"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(config_.nodes[1].data_dir + "/tandem.conf"));

  // The primary's host: interrupted while it waits for the standbys, then run again.
  std::string first_log = dir_ + "/adopt-node1-first.log";
  {
    ChildProcess first(adopt_options(0, first_log));
    ASSERT_TRUE(eventually([&] {
      return read(first_log).find("waiting for node2 to be adopted") != std::string::npos;
    })) << read(first_log);
  }  // killed
  std::cout << read(first_log);
  ASSERT_TRUE(store_knows_cluster());

  // Both standbys at once, each on its host: one restarts at a time.
  ProcessResult adopted2;
  std::thread other([&] { adopted2 = adopt(1); });
  ProcessResult adopted3 = adopt(2);
  other.join();
  EXPECT_EQ(adopted2.exit_code, 0);
  EXPECT_EQ(adopted3.exit_code, 0);
  // Their agents run, the primary's does not yet: node1's server is under no watchdog, so its
  // silence proves nothing and nobody takes over.
  EXPECT_TRUE(stays_primary("node1", std::chrono::seconds(6)))
      << "a standby took over from a primary its agent did not run yet";

  // The primary's host again: it finishes (its agent restarts node1 in place).
  ProcessResult finished = adopt(0);
  ASSERT_EQ(finished.exit_code, 0);
  EXPECT_NE(finished.output.find("finishing the adoption"), std::string::npos);
  EXPECT_NE(finished.output.find("it accepts writes again"), std::string::npos);

  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  EXPECT_EQ(primary(), "node1");
  for (const NodeConfig& node : config_.nodes) {
    EXPECT_EQ(query(node.name, "SELECT current_setting('wal_log_hints') AS v"), "on") << node.name;
    EXPECT_EQ(query(node.name, "SELECT current_setting('data_checksums') AS v"), "off");
  }
  EXPECT_EQ(query("node1",
                  "SELECT string_agg(slot_name || '=' || active, ',' ORDER BY slot_name) AS v "
                  "FROM pg_replication_slots"),
            "node2=true,node3=true")
      << "the walk-through's slots are kept, and used";
  EXPECT_EQ(psql("postgres",
                 "SELECT string_agg(rolname || '=' || coalesce(rolpassword, ''), ',' ORDER BY "
                 "rolname) FROM pg_authid WHERE rolname IN ('repl_user', 'test_app')"),
            roles_before)
      << "roles and passwords are kept";
  std::string auto_conf = read(config_.nodes[1].data_dir + "/postgresql.auto.conf");
  EXPECT_EQ(auto_conf.find("repl_secret"), std::string::npos) << auto_conf;
  probe.stop();
  EXPECT_GT(probe.acknowledged().size(), 10u);
  std::optional<std::set<long>> missing = probe.missing_on(node_conninfo(reach_, "node1"));
  ASSERT_TRUE(missing);
  EXPECT_TRUE(missing->empty()) << missing->size() << " acknowledged writes lost";
  std::cout << "adoption across hosts: the longest time without an acknowledged write: "
            << longest_gap(probe, probe.attempts().front().at).count() << " ms ("
            << probe.acknowledged().size() << " writes)\n";

  // Run again on a standby's host: nothing left to do.
  ProcessResult twice = adopt(1);
  EXPECT_EQ(twice.exit_code, 0);
  EXPECT_NE(twice.output.find("agent runs already"), std::string::npos) << twice.output;

  // The primary's host crashes (every process of it killed): another node takes over; the
  // host back, its agent started as its service would, node1 rejoins by pg_rewind.
  WriteProbe crash_probe(node_conninfo(reach_, "node1"), milliseconds(10), "probe_crash");
  crash_probe.start();
  ASSERT_TRUE(eventually([&] { return crash_probe.acknowledged().size() >= 20; }));
  auto crash_at = WallClock::now();
  for (pid_t pid : host_pids(0)) kill(pid, SIGKILL);
  auto [new_primary, promoted_at] =
      await_takeover("adopted, host crash", "node1", crash_probe, crash_at);
  ASSERT_FALSE(new_primary.empty());
  start_agent(0);
  EXPECT_TRUE(eventually([&] { return all_stream_from(new_primary); }, std::chrono::seconds(90)))
      << "node1 did not come back; see " << agent_log("node1");
  EXPECT_NE(log_of("node1").find("pg_rewind"), std::string::npos) << log_of("node1");
  EXPECT_EQ(
      app_query(new_primary, "SELECT string_agg(i || ':' || v, ',' ORDER BY i) AS v FROM foo"),
      "1:hoge,2:fuga");
  EXPECT_TRUE(eventually([&] {
    return app_query("node1", "SELECT string_agg(i || ':' || v, ',' ORDER BY i) AS v FROM foo") ==
           "1:hoge,2:fuga";
  }));
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().filename().string().find(".diverged-"), std::string::npos)
        << "recloned instead of rewound: " << entry.path();
  }
}

}  // namespace
}  // namespace tandem::testing
