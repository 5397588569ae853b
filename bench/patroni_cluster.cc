#include "bench/patroni_cluster.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "bench/bench_cluster.h"
#include "pg/connection.h"
#include "proc/os_user.h"
#include "proc/ports.h"
#include "proc/process_runner.h"
#include "tests/support/child_process.h"

namespace tandem::bench {
namespace {

constexpr char kPgBin[] = "/usr/lib/postgresql/15/bin";
constexpr char kPatroni[] = "/usr/bin/patroni";
constexpr char kPatronictl[] = "/usr/bin/patronictl";
constexpr char kSuperuserPassword[] = "compare_super";

}  // namespace

PatroniSettings patroni_defaults() { return {"Patroni, defaults", 30, 10, 10}; }
PatroniSettings patroni_fastest() { return {"Patroni, fastest", 5, 1, 2}; }

PatroniCluster::PatroniCluster(PatroniSettings settings, std::string etcd_endpoint, int members)
    : settings_(std::move(settings)), etcd_endpoint_(std::move(etcd_endpoint)) {
  char pattern[] = "/tmp/tandem-compare-XXXXXX";
  dir_ = mkdtemp(pattern);
  chmod(dir_.c_str(), 0755);
  pg_dir_ = dir_ + "/pg";
  base_port_ = find_free_ports("127.0.0.1", 2 * members).value_or(0);
  for (int member = 0; member < members; ++member) {
    names_.push_back(fmt::format("pg{}", member + 1));
    daemons_.emplace_back();
  }
}

PatroniCluster::~PatroniCluster() {
  // The daemons first (SIGTERM, as systemd stops them: each stops its PostgreSQL), then any
  // server a crash left behind.
  for (auto& daemon : daemons_) daemon.reset();
  for (int member = 0; member < members(); ++member) {
    if (auto pid = postmaster_pid(member)) kill(*pid, SIGKILL);
  }
  std::error_code error;
  std::filesystem::remove_all(dir_, error);
}

std::string PatroniCluster::config_path(int member) const {
  return pg_dir_ + "/" + names_[member] + ".yml";
}

// Everything on 127.0.0.1; slots, pg_rewind and the data directory, socket and password file in
// a directory of the postgres user's.
Status PatroniCluster::write_config(int member) const {
  std::string config = fmt::format(
      R"(scope: compare
namespace: /{namespace}/
name: {name}
restapi:
  listen: 127.0.0.1:{rest}
  connect_address: 127.0.0.1:{rest}
etcd3:
  hosts: {etcd}
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry_timeout}
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
  data_dir: {dir}/{name}
  bin_dir: {bin}
  pgpass: {dir}/{name}.pgpass
  authentication:
    superuser:
      username: postgres
      password: {password}
    replication:
      username: replicator
      password: compare_repl
  pg_hba:
  - local all all peer
  - host all all 127.0.0.1/32 scram-sha-256
  - host replication replicator 127.0.0.1/32 scram-sha-256
  parameters:
    unix_socket_directories: '{dir}'
)",
      fmt::arg("namespace", std::filesystem::path(dir_).filename().string()),
      fmt::arg("name", names_[member]), fmt::arg("rest", base_port_ + members() + member),
      fmt::arg("etcd", etcd_endpoint_), fmt::arg("ttl", settings_.ttl),
      fmt::arg("loop_wait", settings_.loop_wait),
      fmt::arg("retry_timeout", settings_.retry_timeout), fmt::arg("port", base_port_ + member),
      fmt::arg("dir", pg_dir_), fmt::arg("bin", kPgBin), fmt::arg("password", kSuperuserPassword));
  auto postgres = lookup_os_user("postgres");
  if (!postgres) return std::unexpected(postgres.error());
  if (auto ok = ensure_owned_dir(pg_dir_, *postgres, 0700); !ok) return ok;
  std::string path = config_path(member);
  std::ofstream(path) << config;
  // It holds passwords: the postgres user's alone.
  if (chown(path.c_str(), postgres->uid, postgres->gid) != 0 || chmod(path.c_str(), 0600) != 0) {
    return fail(ErrorCode::kFailed, "cannot hand " + path + " to postgres");
  }
  return {};
}

Status PatroniCluster::start(int member) {
  if (auto ok = write_config(member); !ok) return ok;
  // setpriv execs Patroni itself as postgres: the child's pid is the daemon's.
  daemons_[member] = std::make_unique<testing::ChildProcess>(
      testing::ChildOptions{.program = "setpriv",
                            // setpriv's change of user clears the parent-death signal: set
                            // again, the daemon goes with this runner however it ends.
                            .args = {"--reuid=postgres", "--regid=postgres", "--init-groups",
                                     "--pdeathsig=KILL", kPatroni, config_path(member)},
                            .env = {{"HOME", "/var/lib/postgresql"}},
                            .log_file = fmt::format("{}/patroni-{}.log", dir_, names_[member])});
  return {};
}

std::string PatroniCluster::log_tail(int member) const {
  std::ifstream log(fmt::format("{}/patroni-{}.log", dir_, names_[member]));
  std::vector<std::string> lines;
  for (std::string line; std::getline(log, line);) {
    lines.push_back(line);
    if (lines.size() > 4) lines.erase(lines.begin());
  }
  std::string tail;
  for (const std::string& line : lines) tail += (tail.empty() ? "" : " | ") + line;
  return tail.empty() ? "(empty)" : tail;
}

Status PatroniCluster::up() {
  if (auto ok = start(0); !ok) return ok;
  if (!wait_for([&] { return writable() == 0; }, std::chrono::minutes(2))) {
    return fail(ErrorCode::kTimeout,
                "Patroni did not bootstrap " + names_[0] + "; its log ends: " + log_tail(0));
  }
  for (int member = 1; member < members(); ++member) {
    if (auto ok = start(member); !ok) return ok;
  }
  for (int member = 1; member < members(); ++member) {
    if (!wait_for([&] { return streams(0, member); }, std::chrono::minutes(2))) {
      return fail(ErrorCode::kTimeout,
                  names_[member] + " does not stream; its log ends: " + log_tail(member));
    }
  }
  return {};
}

std::string PatroniCluster::conninfo(int member) const {
  return make_conninfo({{"host", "127.0.0.1"},
                        {"port", std::to_string(base_port_ + member)},
                        {"user", "postgres"},
                        {"password", kSuperuserPassword},
                        {"dbname", "postgres"},
                        {"connect_timeout", "1"}});
}

std::string PatroniCluster::any_primary_conninfo() const {
  std::string hosts, ports;  // libpq wants as many hosts as ports
  for (int member = 0; member < members(); ++member) {
    hosts += std::string(hosts.empty() ? "" : ",") + "127.0.0.1";
    ports += (ports.empty() ? "" : ",") + std::to_string(base_port_ + member);
  }
  return make_conninfo({{"host", hosts},
                        {"port", ports},
                        {"user", "postgres"},
                        {"password", kSuperuserPassword},
                        {"dbname", "postgres"},
                        {"target_session_attrs", "read-write"},
                        {"connect_timeout", "1"}});
}

namespace {
std::optional<std::string> value_at(const std::string& conninfo, const std::string& query) {
  auto connection = Connection::open(conninfo);
  if (!connection) return std::nullopt;
  auto rows = connection->query(query);
  if (!rows || rows->empty()) return std::nullopt;
  return rows->get(0, "v");
}
}  // namespace

std::optional<int> PatroniCluster::writable() const {
  std::optional<int> found;
  for (int member = 0; member < members(); ++member) {
    if (value_at(conninfo(member), "SELECT (NOT pg_is_in_recovery())::text AS v") == "true") {
      if (found) return std::nullopt;
      found = member;
    }
  }
  return found;
}

bool PatroniCluster::streams(int primary, int standby) const {
  return value_at(conninfo(primary),
                  "SELECT state AS v FROM pg_stat_replication WHERE application_name = '" +
                      names_[standby] + "'") == "streaming";
}

std::optional<pid_t> PatroniCluster::postmaster_pid(int member) const {
  std::string data_dir = pg_dir_ + "/" + names_[member];
  std::ifstream file(data_dir + "/postmaster.pid");
  pid_t pid = 0;
  if (!(file >> pid) || pid <= 0) return std::nullopt;
  // A stale file may name a pid reused since: only a postgres running in that directory.
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string program;
  std::error_code error;
  auto cwd = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/cwd", error);
  if (!std::getline(comm, program) || program != "postgres" || error ||
      cwd != std::filesystem::path(data_dir)) {
    return std::nullopt;
  }
  return pid;
}

void PatroniCluster::crash(int member) {
  // As `tandem local crash` does: the pids first, then the daemon and the postmaster SIGKILLed
  // back to back (the backends die when they notice their postmaster gone).
  pid_t daemon = daemon_pid(member);
  std::optional<pid_t> postmaster = postmaster_pid(member);
  if (daemon > 0) kill(daemon, SIGKILL);
  if (postmaster) kill(*postmaster, SIGKILL);
  daemons_[member].reset();  // reaps the killed daemon
}

void PatroniCluster::kill_postmaster(int member) {
  if (auto pid = postmaster_pid(member)) kill(*pid, SIGKILL);
}

Status PatroniCluster::switchover(int from, int to) const {
  SystemProcessRunner runner;
  auto result = runner.run({.program = kPatronictl,
                            .args = {"-c", config_path(from), "switchover", "--leader",
                                     names_[from], "--candidate", names_[to], "--force"},
                            .timeout = std::chrono::minutes(2)});
  if (!result) return std::unexpected(result.error());
  if (result->exit_code != 0) return fail(ErrorCode::kFailed, "patronictl: " + result->output);
  return {};
}

pid_t PatroniCluster::daemon_pid(int member) const {
  return daemons_[member] ? daemons_[member]->pid() : -1;
}

}  // namespace tandem::bench
