// TLS between hosts (issue 20.4): each host's PostgreSQL serves a certificate of its own, signed
// by the cluster's CA for its address; replication, pg_basebackup, pg_rewind and tandem's own
// connections over TCP check it (verify-full), and pg_hba takes no TCP connection without TLS.
// A server whose certificate another CA signed is refused, with libpq's reason in status.
#include <cstdio>

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
    std::ofstream(extensions) << "subjectAltName = IP:" << address << "\n";
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

}  // namespace
}  // namespace tandem::testing
