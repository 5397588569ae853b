// `tandem adopt` of a cluster that Patroni managed (issue 17): two daemons of Debian's patroni
// on a one-member etcd bootstrap a primary and a replica streaming through a slot named after
// its member; an application role and a table are added; the cluster is paused with
// `patronictl pause --wait` and both daemons are stopped, which leaves PostgreSQL running.
// tandem then takes both servers over in place — data, roles, passwords and Patroni's slot
// kept — and a host crash fails over, the old primary rejoining by pg_rewind, no row lost.
#include <fmt/format.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "../support/child_process.h"
#include "../support/etcd_server.h"
#include "bench/local_queries.h"
#include "local_cluster_fixture.h"
#include "pg/postmaster.h"
#include "proc/os_user.h"
#include "proc/process_runner.h"

namespace tandem::testing {
namespace {

constexpr char kPgBin[] = "/usr/lib/postgresql/15/bin";
constexpr char kPatroni[] = "/usr/bin/patroni";
constexpr char kPatronictl[] = "/usr/bin/patronictl";
// The members, in the order they start: the first bootstraps and leads.
const std::vector<std::string> kMembers = {"alpha", "bravo"};

class AdoptPatroniTest : public LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    ASSERT_TRUE(std::filesystem::exists(kPatroni) && std::filesystem::exists(kPatronictl))
        << "Debian's patroni is not installed: apt-get install patroni";
    // PostgreSQL's ports, then Patroni's REST APIs, then tandem's agents' APIs.
    port_ = find_free_ports(6);
    pg_dir_ = dir_ + "/pg";
    ASSERT_NO_FATAL_FAILURE(make_postgres_dir(pg_dir_));
    // What the test knows before tandem does: the servers, named as adopt will name them (the
    // primary by its directory, the replica by its slot, which Patroni names after the member).
    config_.socket_dir = pg_dir_;
    for (std::size_t index = 0; index < kMembers.size(); ++index) {
      config_.nodes.push_back({.name = kMembers[index],
                               .port = port_ + static_cast<int>(index),
                               .data_dir = pg_dir_ + "/" + kMembers[index]});
    }
  }

  void TearDown() override {
    // Patroni first: running, it would start again whatever is stopped under it.
    for (const std::string& member : kMembers) stop_patroni(member);
    etcd_.reset();
    // Not adopted: the servers Patroni left are stopped by hand.
    if (!std::filesystem::exists(config_path_)) stop_by_hand(config_, pg_dir_);
    LocalClusterTest::TearDown();
  }

  std::string as_postgres(const std::string& command, bool may_fail = false) {
    return run_as_postgres(pg_dir_, command, may_fail);
  }

  // SQL as the postgres OS user over the socket (Patroni's pg_hba lets it in by peer; root
  // only once tandem has added its line).
  std::string psql(const std::string& member, const std::string& database, const std::string& sql,
                   bool may_fail = false) {
    return as_postgres(fmt::format("{}/psql -X -h {} -p {} -d {} -v ON_ERROR_STOP=1 -Atq -c \"{}\"",
                                   kPgBin, pg_dir_, node(member).port, database, sql),
                       may_fail);
  }

  std::string patroni_config_path(const std::string& member) const {
    return pg_dir_ + "/" + member + ".yml";
  }

  // Patroni's configuration of one member: everything on 127.0.0.1, fast loops, slots, the
  // data directory, socket and password file in the postgres user's directory.
  void write_patroni_config(std::size_t index) {
    const std::string& member = kMembers[index];
    int rest_port = port_ + 2 + static_cast<int>(index);
    std::string config = fmt::format(
        R"(scope: adopted
namespace: /service/
name: {member}
restapi:
  listen: 127.0.0.1:{rest}
  connect_address: 127.0.0.1:{rest}
etcd3:
  hosts: 127.0.0.1:{etcd}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 1
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
  initdb:
  - encoding: UTF8
  - no-locale
postgresql:
  listen: 127.0.0.1:{port}
  connect_address: 127.0.0.1:{port}
  data_dir: {dir}/{member}
  bin_dir: {bin}
  pgpass: {dir}/{member}.pgpass
  authentication:
    superuser:
      username: postgres
      password: super_secret
    replication:
      username: replicator
      password: repl_secret
  pg_hba:
  - local all all peer
  - host all all 127.0.0.1/32 scram-sha-256
  - host replication replicator 127.0.0.1/32 scram-sha-256
  parameters:
    unix_socket_directories: '{dir}'
)",
        fmt::arg("member", member), fmt::arg("rest", rest_port),
        fmt::arg("etcd", etcd_->members()[0].client_port), fmt::arg("port", node(member).port),
        fmt::arg("dir", pg_dir_), fmt::arg("bin", kPgBin));
    std::string path = patroni_config_path(member);
    std::ofstream(path) << config;
    auto postgres = lookup_os_user("postgres");
    ASSERT_TRUE(postgres);
    ASSERT_EQ(chown(path.c_str(), postgres->uid, postgres->gid), 0);
    ASSERT_EQ(chmod(path.c_str(), 0600), 0);  // it holds passwords
  }

  void start_patroni(std::size_t index) {
    const std::string& member = kMembers[index];
    write_patroni_config(index);
    // setpriv execs Patroni itself as postgres: the child the test stops is the daemon.
    patroni_[member] = std::make_unique<ChildProcess>(
        ChildOptions{.program = "setpriv",
                     .args = {"--reuid=postgres", "--regid=postgres", "--init-groups", kPatroni,
                              patroni_config_path(member)},
                     .env = {{"HOME", "/var/lib/postgresql"}},
                     .log_file = dir_ + "/patroni-" + member + ".log"});
  }

  // SIGTERM, as systemd stops it, then waits for the daemon to exit (KILL after a minute).
  void stop_patroni(const std::string& member) {
    auto found = patroni_.find(member);
    if (found == patroni_.end() || !found->second) return;
    kill(found->second->pid(), SIGTERM);
    bool exited = eventually([&] { return !found->second->running(); }, std::chrono::minutes(1));
    EXPECT_TRUE(exited) << "Patroni " << member << " did not exit on SIGTERM";
    found->second.reset();
  }

  // The HTTP status of Patroni's REST API of a member (GET), 0 when it does not answer.
  int patroni_status(std::size_t index, const std::string& path) {
    httplib::Client client("127.0.0.1", port_ + 2 + static_cast<int>(index));
    client.set_connection_timeout(std::chrono::seconds(1));
    client.set_read_timeout(std::chrono::seconds(2));
    auto reply = client.Get(path);
    return reply ? reply->status : 0;
  }

  std::string patronictl(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"-c", patroni_config_path(kMembers[0])};
    full.insert(full.end(), args.begin(), args.end());
    SystemProcessRunner runner;
    auto result =
        runner.run({.program = kPatronictl, .args = full, .timeout = std::chrono::minutes(1)});
    EXPECT_TRUE(result && result->exit_code == 0)
        << "patronictl: " << (result ? result->output : result.error().message);
    return result ? result->output : "";
  }

  // etcd, then the leader (it bootstraps with initdb), then the replica (pg_basebackup from
  // it), streaming through its slot.
  void start_patroni_cluster() {
    etcd_ = EtcdCluster::single(dir_);
    ASSERT_TRUE(etcd_->healthy()) << "etcd did not start";
    start_patroni(0);
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(
        eventually([&] { return patroni_status(0, "/primary") == 200; }, std::chrono::minutes(2)))
        << "Patroni did not bootstrap " << kMembers[0];
    start_patroni(1);
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(eventually(
        [&] {
          return psql(kMembers[0], "postgres",
                      "SELECT application_name || ':' || state FROM pg_stat_replication",
                      true) == kMembers[1] + ":streaming\n";
        },
        std::chrono::minutes(2)))
        << patronictl({"list"});
    std::cout << patronictl({"list"});
  }

  // The application's role, database and rows, made on the leader and seen on the replica.
  void add_application() {
    psql(kMembers[0], "postgres", "CREATE USER test_app LOGIN PASSWORD 'app_secret'");
    psql(kMembers[0], "postgres", "CREATE DATABASE test_app OWNER test_app");
    psql(kMembers[0], "test_app",
         "SET ROLE test_app; CREATE TABLE foo (i int, v varchar(100)); "
         "INSERT INTO foo VALUES (1, 'hoge'), (2, 'fuga')");
    ASSERT_TRUE(eventually(
        [&] { return psql(kMembers[1], "test_app", "SELECT count(*) FROM foo", true) == "2\n"; }));
  }

  // patronictl pause --wait, then both daemons stopped: PostgreSQL goes on, the same
  // postmasters as before.
  void pause_and_stop_patroni() {
    std::string paused = patronictl({"pause", "--wait"});
    ASSERT_NE(paused.find("Success: cluster management is paused"), std::string::npos) << paused;
    std::map<std::string, pid_t> postmasters;
    for (const std::string& member : kMembers) {
      auto pid = running_postmaster(node(member).data_dir);
      ASSERT_TRUE(pid) << member;
      postmasters[member] = *pid;
    }
    for (const std::string& member : kMembers) stop_patroni(member);
    for (const std::string& member : kMembers) {
      EXPECT_EQ(running_postmaster(node(member).data_dir), postmasters[member])
          << "PostgreSQL of " << member << " stopped with its paused Patroni";
      std::string log = read_file(dir_ + "/patroni-" + member + ".log").value_or("");
      EXPECT_NE(log.find("Postgresql is not stopped due paused state"), std::string::npos) << log;
    }
  }

  CommandOutput adopt() {
    std::vector<std::string> args = {"adopt", "--dir", dir_, "--api-base-port",
                                     std::to_string(port_ + 4)};
    for (const std::string& member : kMembers) args.push_back(node(member).data_dir);
    return tandem(args);
  }

  static constexpr char kRolesQuery[] =
      "SELECT string_agg(rolname || '=' || coalesce(rolpassword, ''), ',' ORDER BY rolname) "
      "AS v FROM pg_authid WHERE rolname IN ('postgres', 'replicator', 'test_app')";
  static constexpr char kRowsQuery[] =
      "SELECT string_agg(i || ':' || v, ',' ORDER BY i) AS v FROM foo";

  std::string rows(const std::string& member) { return value(member, kRowsQuery); }

  // What Patroni left in the data directories, as tandem will find it: postgresql.conf
  // rewritten (the initdb one kept as postgresql.base.conf, included first), absolute hba_file
  // and ident_file, and a standby's primary_conninfo there too, its password in a password file
  // of Patroni's own; the standby's slot on the leader named after its member.
  void check_patroni_files(const std::string& leader, const std::string& replica) {
    for (const std::string& member : kMembers) {
      std::string conf = read_file(node(member).data_dir + "/postgresql.conf").value_or("");
      EXPECT_TRUE(conf.find("include 'postgresql.base.conf'") != std::string::npos &&
                  conf.find("hba_file = '" + node(member).data_dir + "/pg_hba.conf'") !=
                      std::string::npos)
          << conf;
    }
    std::string conf = read_file(node(replica).data_dir + "/postgresql.conf").value_or("");
    EXPECT_NE(conf.find("passfile=" + pg_dir_ + "/" + replica + ".pgpass"), std::string::npos)
        << conf;
    EXPECT_EQ(conf.find("repl_secret"), std::string::npos) << conf;
    EXPECT_EQ(
        psql(leader, "postgres", "SELECT slot_name || ':' || active FROM pg_replication_slots"),
        replica + ":true\n");
  }

  // A host crash: the replica takes over; the old primary comes back by pg_rewind.
  void crash_and_rejoin_by_rewind(const std::string& leader, const std::string& replica) {
    exec(leader, "INSERT INTO foo VALUES (3, 'before the crash')");
    ASSERT_TRUE(eventually([&] { return rows(replica).find("3:") != std::string::npos; }));
    tandem_ok({"local", "crash", leader});
    ASSERT_TRUE(eventually([&] { return bench::writable_node(config_) == replica; },
                           std::chrono::seconds(30)));
    exec(replica, "INSERT INTO foo VALUES (4, 'after the crash')");
    tandem_ok({"local", "start", leader});
    ASSERT_TRUE(eventually([&] { return bench::streams(config_, replica, leader); },
                           std::chrono::seconds(60)));
    std::string agent_log = read_file(config_.log_dir + "/" + leader + ".agent.log").value_or("");
    EXPECT_NE(agent_log.find("pg_rewind " + leader + " from " + replica), std::string::npos)
        << agent_log;
    EXPECT_EQ(agent_log.find("clone"), std::string::npos) << "rejoined by rewind, not a copy";
    EXPECT_EQ(rows(replica), "1:hoge,2:fuga,3:before the crash,4:after the crash");
    EXPECT_TRUE(eventually([&] { return rows(leader) == rows(replica); }));
    // pg_rewind copied the new primary's postgresql.conf, where Patroni wrote hba_file and
    // ident_file as paths into that node's data directory: the rewound node must still read
    // its own.
    for (const auto& [setting, file] :
         {std::pair{"hba_file", "pg_hba.conf"}, {"ident_file", "pg_ident.conf"}}) {
      EXPECT_EQ(value(leader, fmt::format("SELECT current_setting('{}') AS v", setting)),
                node(leader).data_dir + "/" + file)
          << leader << " reads another node's " << setting << " after its rewind";
    }
  }

  int port_ = 0;
  std::string pg_dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::map<std::string, std::unique_ptr<ChildProcess>> patroni_;
};

TEST_F(AdoptPatroniTest, APausedPatroniClusterIsAdoptedInPlaceThenFailsOverAndRejoinsByRewind) {
  const std::string& leader = kMembers[0];
  const std::string& replica = kMembers[1];
  start_patroni_cluster();
  if (HasFailure()) return;
  add_application();
  if (HasFailure()) return;
  std::string roles_before = psql(leader, "postgres", kRolesQuery);
  ASSERT_EQ(psql(leader, "test_app", kRowsQuery), "1:hoge,2:fuga\n");
  check_patroni_files(leader, replica);
  pause_and_stop_patroni();
  if (HasFailure()) return;
  for (const std::string& member : kMembers) {
    as_postgres("touch " + node(member).data_dir + "/adopt-mark");
  }

  CommandOutput adopted = adopt();
  ASSERT_EQ(adopted.exit_code, 0) << adopted.output;
  std::cout << adopted.output;
  config_ = config_on_disk();
  ASSERT_EQ(config_.nodes.size(), 2u);
  EXPECT_EQ(config_.nodes[0].name, leader);
  EXPECT_EQ(config_.nodes[1].name, replica) << "named after its slot";
  EXPECT_EQ(bench::writable_node(config_), leader) << "the primary keeps its role";
  EXPECT_TRUE(eventually([&] { return bench::streams(config_, leader, replica); }));
  EXPECT_EQ(value(leader,
                  "SELECT string_agg(slot_name || ':' || active, ',') AS v FROM "
                  "pg_replication_slots"),
            replica + ":true")
      << "Patroni's slot is kept, and used; no other";
  for (const std::string& member : kMembers) {
    EXPECT_EQ(value(member, "SELECT current_setting('wal_log_hints') AS v"), "on") << member;
    EXPECT_EQ(rows(member), "1:hoge,2:fuga") << member;
    EXPECT_TRUE(std::filesystem::exists(node(member).data_dir + "/adopt-mark"))
        << member << ": adopted in place, no data copied";
  }
  EXPECT_EQ(value(leader, kRolesQuery) + "\n", roles_before) << "roles and passwords are kept";
  crash_and_rejoin_by_rewind(leader, replica);
}

}  // namespace
}  // namespace tandem::testing
