// TLS between hosts (issue 20.4): each host's PostgreSQL serves a certificate of its own, signed
// by the cluster's CA for its address; replication, pg_basebackup, pg_rewind and tandem's own
// connections over TCP check it (verify-full), and pg_hba takes no TCP connection without TLS.
// A server whose certificate another CA signed is refused, with libpq's reason in status.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "multihost_fixture.h"

namespace tandem::testing {
namespace {

// Runs `command` through /bin/sh; its exit code and its output (stdout and stderr).
CommandOutput shell(const std::string& command) {
  CommandOutput out;
  FILE* pipe = popen(("{ " + command + "; } 2>&1").c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  while (std::size_t read = fread(buffer, 1, sizeof(buffer), pipe)) out.output.append(buffer, read);
  int status = pclose(pipe);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string sh_quoted(const std::string& word) {
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

class TlsHostTest : public MultiHostTest {
 protected:
  explicit TlsHostTest(int spare_hosts = 0) : MultiHostTest(3, spare_hosts) {}

  // The certificates of each host in its own directory, which its agent (and so its
  // PostgreSQL) sees at the same path as every other host sees its own: tls/ under the socket
  // directory, mounted per host.
  void adjust(ClusterConfig& config) override {
    std::string ca = dir_ + "/ca";
    std::string rogue = dir_ + "/rogue-ca";
    ASSERT_TRUE(make_ca(ca, "tandem test CA"));
    ASSERT_TRUE(make_ca(rogue, "another CA"));
    auto postgres = lookup_os_user(config.os_user);
    ASSERT_TRUE(postgres);
    for (int index = 0; index < nodes_; ++index) {
      std::string tls = host_socket_dir(index) + "/tls";
      std::filesystem::create_directories(tls);
      ASSERT_TRUE(make_server_cert(ca, tls, network_->address(index)));
      ASSERT_EQ(chown((tls + "/server.key").c_str(), postgres->uid, postgres->gid), 0);
      std::filesystem::copy_file(ca + "/ca.crt", tls + "/ca.crt");
    }
    std::string tls = config.socket_dir + "/tls";
    config.tls = {.cert_file = tls + "/server.crt",
                  .key_file = tls + "/server.key",
                  .ca_file = tls + "/ca.crt"};
  }

  bool make_ca(const std::string& dir, const std::string& name) {
    std::filesystem::create_directories(dir);
    CommandOutput made = shell(fmt::format(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-keyout {0}/ca.key -out {0}/ca.crt -subj {1}",
        sh_quoted(dir), sh_quoted("/CN=" + name)));
    EXPECT_EQ(made.exit_code, 0) << made.output;
    return made.exit_code == 0;
  }
  // server.crt and server.key in `dir`, for `address`, signed by the CA in `ca`.
  bool make_server_cert(const std::string& ca, const std::string& dir, const std::string& address) {
    std::string extensions = dir + "/san.ext";
    // The address as a DNS name too: pgBackRest 2.45 compares the host only with DNS names.
    std::ofstream(extensions) << "subjectAltName = IP:" << address << ", DNS:" << address << "\n";
    CommandOutput made = shell(fmt::format(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout {0}/server.key -out {0}/server.csr -subj /CN={2} && "
        "openssl x509 -req -in {0}/server.csr -CA {1}/ca.crt -CAkey {1}/ca.key -CAcreateserial "
        "-days 2 -out {0}/server.crt -extfile {0}/san.ext && chmod 0600 {0}/server.key",
        sh_quoted(dir), sh_quoted(ca), address));
    EXPECT_EQ(made.exit_code, 0) << made.output;
    return made.exit_code == 0;
  }

  // `command` on host `index`, with its socket directory (and certificates) mounted, as its
  // agent has them.
  CommandOutput on_host(int index, const std::string& command) {
    return shell(fmt::format(
        "ip netns exec {} /bin/sh -c {}", network_->netns(index),
        sh_quoted(fmt::format("mount --bind {} {} && {}", sh_quoted(host_socket_dir(index)),
                              sh_quoted(config_.socket_dir), command))));
  }
  CommandOutput tandem_on_host(int index, const std::string& args) {
    return on_host(index, fmt::format("{} -c {} {}", TANDEM_BINARY, sh_quoted(config_path_), args));
  }
  // The standbys of `node` whose replication connection is encrypted.
  std::string encrypted_standbys(const std::string& node) {
    return query(node,
                 "SELECT count(*)::text AS v FROM pg_stat_replication r JOIN pg_stat_ssl s "
                 "USING (pid) WHERE s.ssl");
  }
  // The detail `tandem status --json`, run on host `index`, gives `node`.
  std::string status_detail(int index, const std::string& node) {
    CommandOutput status = tandem_on_host(index, "status --json");
    auto report = nlohmann::json::parse(status.output, nullptr, false);
    if (!report.is_object()) return "status --json: " + status.output;
    for (const auto& entry : report["nodes"]) {
      if (entry["name"] == node) return entry.value("detail", "");
    }
    return "";
  }
};

TEST_F(TlsHostTest, ReplicationRewindAndTandemsConnectionsGoOverVerifiedTls) {
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string old_primary = primary();
  int old_index = index_of(old_primary);
  int other = (old_index + 1) % nodes_;
  // The standbys stream over TLS (their clones came over it too: pg_basebackup verify-full).
  EXPECT_EQ(encrypted_standbys(old_primary), "2");
  EXPECT_EQ(query(old_primary, "SELECT current_setting('ssl') AS v"), "on");

  // Over TCP, no TLS, no entry: refused by pg_hba, whatever the password.
  CommandOutput plain =
      on_host(other, fmt::format("psql {} -c 'SELECT 1'",
                                 sh_quoted(fmt::format("host={} port=5432 user={} dbname=postgres "
                                                       "sslmode=disable passfile={}",
                                                       network_->address(old_index),
                                                       config_.superuser, config_.password_file))));
  EXPECT_NE(plain.exit_code, 0) << plain.output;
  EXPECT_NE(plain.output.find("no encryption"), std::string::npos) << plain.output;

  // tandem status from another host reaches every node over verified TLS.
  EXPECT_EQ(status_detail(other, old_primary), "accepting writes");

  // A failover, then the old primary back by pg_rewind — over TLS, checked.
  WriteProbe probe(node_conninfo(reach_, old_primary), milliseconds(10));
  probe.start();
  ASSERT_TRUE(eventually([&] { return probe.acknowledged().size() >= 20; }));
  auto cut_at = WallClock::now();
  ASSERT_TRUE(network_->cut(old_index));
  auto [new_primary, promoted_at] = await_takeover("host cut off", old_primary, probe, cut_at);
  ASSERT_FALSE(new_primary.empty());
  ASSERT_NO_FATAL_FAILURE(expect_rejoin_by_rewind(old_index, old_primary, new_primary));
  EXPECT_TRUE(eventually([&] { return encrypted_standbys(new_primary) == "2"; }));

  // A server whose certificate another CA signed: refused, libpq's reason in status.
  int standby = -1;
  for (int index = 0; index < nodes_; ++index) {
    if (config_.nodes[index].name != new_primary) standby = index;
  }
  ASSERT_GE(standby, 0);
  std::string tls = host_socket_dir(standby) + "/tls";
  ASSERT_TRUE(make_server_cert(dir_ + "/rogue-ca", tls, network_->address(standby)));
  auto postgres = lookup_os_user(config_.os_user);
  ASSERT_TRUE(postgres);
  ASSERT_EQ(chown((tls + "/server.key").c_str(), postgres->uid, postgres->gid), 0);
  std::string name = config_.nodes[standby].name;
  EXPECT_EQ(query(name, "SELECT pg_reload_conf()::text AS v"), "true");
  int asking = index_of(new_primary);
  std::string detail;
  EXPECT_TRUE(eventually(
      [&] {
        detail = status_detail(asking, name);
        return detail.find("certificate verify failed") != std::string::npos;
      },
      std::chrono::seconds(20)))
      << detail;
  EXPECT_EQ(status_detail(asking, new_primary), "accepting writes");
}

// Backups on several machines (issue 18.1): the repository on a host of its own, where `tandem
// repository` runs pgBackRest's TLS server, makes the stanza and where backups are taken; each
// agent runs its node's TLS server. The repository is mounted on that host alone: the nodes
// reach it only over TLS.
class RepositoryHostTest : public TlsHostTest {
 protected:
  RepositoryHostTest() : TlsHostTest(/*spare_hosts=*/1) {}

  int repository_host() const { return nodes_ + kEtcdMembers; }
  std::string repository_dir() const { return dir_ + "/repository-host"; }

  void adjust(ClusterConfig& config) override {
    ASSERT_NO_FATAL_FAILURE(TlsHostTest::adjust(config));
    auto postgres = lookup_os_user(config.os_user);
    ASSERT_TRUE(postgres);
    int host = repository_host();
    std::string socket_dir = host_socket_dir(host);
    std::string tls = socket_dir + "/tls";
    std::filesystem::create_directories(tls);
    ASSERT_EQ(chown(socket_dir.c_str(), postgres->uid, postgres->gid), 0);
    ASSERT_TRUE(make_server_cert(dir_ + "/ca", tls, network_->address(host)));
    ASSERT_EQ(chown((tls + "/server.key").c_str(), postgres->uid, postgres->gid), 0);
    std::filesystem::copy_file(dir_ + "/ca/ca.crt", tls + "/ca.crt");
    for (const std::string& dir : {dir_ + "/repository", repository_dir()}) {
      std::filesystem::create_directories(dir);
      ASSERT_EQ(chown(dir.c_str(), postgres->uid, postgres->gid), 0);
    }
    config.backup.repository = dir_ + "/repository";
    config.backup.repository_host = network_->address(host);
    config.backup.tls = config.tls;  // what tandem.yaml leaves out means
  }

  // `command` on the repository host: its socket directory (certificates, pgBackRest's locks)
  // and the repository mounted there.
  std::string on_repository_host(const std::string& command) const {
    return fmt::format("mount --bind {} {} && mount --bind {} {} && {}",
                       sh_quoted(host_socket_dir(repository_host())), sh_quoted(config_.socket_dir),
                       sh_quoted(repository_dir()), sh_quoted(config_.backup.repository), command);
  }
  CommandOutput tandem_on_repository_host(const std::string& args) {
    return shell(fmt::format("ip netns exec {} /bin/sh -c {}", network_->netns(repository_host()),
                             sh_quoted(on_repository_host(fmt::format(
                                 "{} -c {} {}", TANDEM_BINARY, sh_quoted(config_path_), args)))));
  }
  void start_repository() {
    repository_ = std::make_unique<ChildProcess>(ChildOptions{
        .program = "/usr/sbin/ip",
        .args = {"netns", "exec", network_->netns(repository_host()), "/bin/sh", "-c",
                 on_repository_host(fmt::format("exec {} -c {} repository", TANDEM_BINARY,
                                                sh_quoted(config_path_)))},
        .log_file = agent_log("repository")});
  }
  void TearDown() override {
    repository_.reset();
    TlsHostTest::TearDown();
  }
  // What a psql on host `index` prints for `sql` against the server on port `port` there.
  std::string psql_on_host(int index, int port, const std::string& sql) {
    CommandOutput out = on_host(
        index, fmt::format("runuser -u {} -- psql -X -At -h {} -p {} -d test_app -c {}",
                           config_.os_user, sh_quoted(config_.socket_dir), port, sh_quoted(sql)));
    return out.output;
  }

  // `tandem backup check` on the repository host passes within `timeout` (the stanza made,
  // the primary's WAL in the repository); what it said last is printed when it does not.
  bool archive_checks(milliseconds timeout) {
    CommandOutput checked;
    bool passed = eventually(
        [&] {
          checked = tandem_on_repository_host("backup check");
          return checked.exit_code == 0;
        },
        timeout);
    if (!passed) std::cout << checked.output << "\nsee " << agent_log("repository") << "\n";
    return passed;
  }

  std::unique_ptr<ChildProcess> repository_;
};

TEST_F(RepositoryHostTest, NodesArchiveToTheRepositoryHostWhereBackupsAreTakenAcrossAFailover) {
  start_repository();
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string old_primary = primary();
  int old_index = index_of(old_primary);
  // The stanza, made by the repository host once the primary answers; then WAL reaches it.
  EXPECT_TRUE(archive_checks(std::chrono::seconds(60)));
  // A new cluster naming that stanza: refused on a node's host before initdb, by what the
  // repository host answers; nothing made.
  ClusterConfig another = config_;
  another.name = "other";
  another.backup.stanza = config_.stanza();
  for (NodeConfig& node : another.nodes) {
    node.data_dir += "-other";
    node.port += 100;
    if (node.api_port != 0) node.api_port += 100;
  }
  std::string other_path = dir_ + "/other.yaml";
  std::ofstream(other_path) << render_config(another);
  CommandOutput refused_init =
      on_host(old_index, fmt::format("{} -c {} init {}", TANDEM_BINARY, sh_quoted(other_path),
                                     another.nodes[old_index].name));
  EXPECT_NE(refused_init.exit_code, 0);
  EXPECT_NE(refused_init.output.find("already holds stanza " + config_.stanza()), std::string::npos)
      << refused_init.output;
  EXPECT_FALSE(std::filesystem::exists(another.nodes[old_index].data_dir));
  auto connection = Connection::open(node_conninfo(reach_, old_primary));
  ASSERT_TRUE(connection);
  ASSERT_TRUE(connection->execute("CREATE TABLE kept AS SELECT generate_series(1, 1000) AS n"));

  // A backup, on the repository host, copied from a standby.
  CommandOutput backup = tandem_on_repository_host("backup --type full");
  EXPECT_EQ(backup.exit_code, 0) << backup.output;
  EXPECT_EQ(backup.output.find("taken from " + old_primary), std::string::npos) << backup.output;
  EXPECT_NE(backup.output.find("taken from node"), std::string::npos) << backup.output;
  // Refused on a node's host, with where to run it.
  CommandOutput refused = tandem_on_host(old_index, "backup");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("on the repository host " + network_->address(repository_host())),
            std::string::npos)
      << refused.output;
  // Nothing reached the repository but through the repository host's TLS server: seen from
  // the nodes' hosts, its directory is empty.
  EXPECT_TRUE(std::filesystem::is_empty(config_.backup.repository));
  EXPECT_TRUE(
      std::filesystem::exists(repository_dir() + "/backup/" + config_.stanza() + "/backup.info"));

  // A failover: the new primary archives its timeline, the archive checks again, and the next
  // backup (incremental) is taken with the old primary's host still cut off.
  ASSERT_TRUE(network_->cut(old_index));
  auto other = await_other_primary(old_primary, std::chrono::seconds(60));
  ASSERT_TRUE(other);
  std::string new_primary = other->first;
  auto after = Connection::open(node_conninfo(reach_, new_primary));
  ASSERT_TRUE(after);
  ASSERT_TRUE(after->execute("INSERT INTO kept SELECT generate_series(1001, 1500)"));
  EXPECT_TRUE(archive_checks(std::chrono::seconds(60)));
  backup = tandem_on_repository_host("backup --type incr");
  EXPECT_EQ(backup.exit_code, 0) << backup.output;
  std::string history = fmt::format("{}/archive/{}", repository_dir(), config_.stanza());
  bool has_history = false;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(history)) {
    if (entry.path().filename() == "00000002.history") has_history = true;
  }
  EXPECT_TRUE(has_history) << "no timeline 2 history file in " << history;

  // A point-in-time restore on a node's host, from the repository host: every row.
  int restorer = index_of(new_primary);
  std::string restored = fmt::format("{}/restored", dir_);
  CommandOutput restore = tandem_on_host(
      restorer, fmt::format("restore --to latest --promote --dir {} --port 5499", restored));
  EXPECT_EQ(restore.exit_code, 0) << restore.output;
  EXPECT_EQ(psql_on_host(restorer, 5499, "SELECT count(*) FROM kept"), "1500\n");
  on_host(restorer, fmt::format("runuser -u {} -- /usr/lib/postgresql/15/bin/pg_ctl -D {} -m fast "
                                "-w stop",
                                config_.os_user, sh_quoted(restored)));

  // The old primary back by pg_rewind; the archive still checks.
  ASSERT_NO_FATAL_FAILURE(expect_rejoin_by_rewind(old_index, old_primary, new_primary));
  EXPECT_TRUE(archive_checks(std::chrono::seconds(1)));

  // The repository host cut off: the primary keeps writing (its WAL stays in pg_wal), and
  // status says its archiving fails; healed, the archive catches up.
  ASSERT_TRUE(network_->cut(repository_host()));
  std::string last_cut_segment;
  for (int segment = 0; segment < 3; ++segment) {
    EXPECT_TRUE(after->execute("INSERT INTO kept SELECT generate_series(1, 1000)"));
    last_cut_segment = query(new_primary, "SELECT pg_walfile_name(pg_switch_wal()) AS v");
  }
  ASSERT_EQ(last_cut_segment.size(), 24u) << last_cut_segment;
  std::string warnings;
  EXPECT_TRUE(eventually(
      [&] {
        CommandOutput status = tandem_on_host(restorer, "status --json");
        auto report = nlohmann::json::parse(status.output, nullptr, false);
        warnings = report.is_object() ? report["warnings"].dump() : status.output;
        return warnings.find("WAL archiving fails") != std::string::npos;
      },
      std::chrono::seconds(60)))
      << warnings;
  ASSERT_TRUE(network_->heal(repository_host()));
  EXPECT_TRUE(archive_checks(std::chrono::seconds(90)));
  EXPECT_EQ(query(new_primary,
                  fmt::format("SELECT (failed_count > 0 AND last_archived_wal >= '{}')::text AS v "
                              "FROM pg_stat_archiver",
                              last_cut_segment)),
            "true");
}

// With backup.schedule, the repository host takes the slot's backup (pgBackRest 2.45 backs up
// only where the repository is; the primary's agent takes none), from a standby.
class ScheduledRepositoryHostTest : public RepositoryHostTest {
 protected:
  void adjust(ClusterConfig& config) override {
    ASSERT_NO_FATAL_FAILURE(RepositoryHostTest::adjust(config));
    config.backup.schedule = std::chrono::seconds(20);
  }
};

TEST_F(ScheduledRepositoryHostTest, TheRepositoryHostTakesTheScheduledBackupsFromAStandby) {
  start_repository();
  ASSERT_NO_FATAL_FAILURE(wait_for_cluster());
  std::string leader = primary();
  nlohmann::json listed;
  EXPECT_TRUE(eventually(
      [&] {
        CommandOutput list = tandem_on_repository_host("backup list --json");
        listed = nlohmann::json::parse(list.output, nullptr, false);
        return listed.is_object() && !listed["backups"].empty();
      },
      std::chrono::seconds(90)))
      << listed.dump() << "\nsee " << agent_log("repository");
  // The first slot's may come before any standby streams (then from the primary); once they
  // stream, a standby's.
  std::string log;
  EXPECT_TRUE(eventually(
      [&] {
        log = log_of("repository");
        for (const NodeConfig& node : config_.nodes) {
          if (node.name != leader && log.find("started from " + node.name) != std::string::npos) {
            return log.find(": done in ") != std::string::npos;
          }
        }
        return false;
      },
      std::chrono::seconds(90)))
      << log;
  EXPECT_NE(log.find("scheduled backup (full) of the slot from"), std::string::npos) << log;
  for (const NodeConfig& node : config_.nodes) {
    EXPECT_EQ(log_of(node.name).find("scheduled backup"), std::string::npos) << node.name;
  }
}

}  // namespace
}  // namespace tandem::testing
