#include "bench/scenarios.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <string_view>
#include <thread>

#include "bench/bench_cluster.h"
#include "local/local_agents.h"
#include "pg/pg_binaries.h"
#include "pg/server_files.h"
#include "proc/detached.h"
#include "proc/os_user.h"
#include "proc/ports.h"
#include "proc/process_runner.h"

namespace tandem::bench {
namespace {

using std::chrono::milliseconds;
using WallClock = std::chrono::system_clock;

double seconds_between(WallClock::time_point from, WallClock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// The default cluster (a primary and two standbys) says nothing; others say their size.
std::string nodes_suffix(int standbys) {
  return standbys == 2 ? "" : fmt::format(", {} nodes", standbys + 1);
}

// A random point of the agent's cycle, as issue 5 asks: the kill must not line up with it.
void random_cycle_offset(milliseconds loop_interval) {
  static std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<long> pick(0, loop_interval.count() - 1);
  std::this_thread::sleep_for(milliseconds(pick(random)));
}

// A cluster of the scenario's: its own settings, then the options' adjustment.
std::unique_ptr<BenchCluster> make_cluster(const BenchOptions& options, int standbys,
                                           const std::function<void(ClusterConfig&)>& own = {}) {
  return std::make_unique<BenchCluster>(options.tandem_binary, standbys,
                                        [&](ClusterConfig& config) {
                                          if (own) own(config);
                                          if (options.adjust) options.adjust(config);
                                        });
}

Status up(BenchCluster& cluster) {
  return cluster.tandem_ok({"local", "up", "--dir", cluster.dir()});
}

std::unexpected<Error> failed(std::string_view what) {
  return fail(ErrorCode::kTimeout, std::string(what));
}

std::optional<WallClock::time_point> last_promotion(const BenchCluster& cluster) {
  CommandOutput out = cluster.tandem({"history", "--json"});
  auto history = nlohmann::json::parse(out.output, nullptr, false);
  if (!history.is_array() || history.empty()) return std::nullopt;
  return WallClock::time_point(milliseconds(history.back()["time_ms"].get<std::int64_t>()));
}

std::optional<long> lost_writes(const WriteProbe& probe, const BenchCluster& cluster,
                                const std::string& primary) {
  auto missing = probe.missing_on(cluster.conninfo(primary));
  if (!missing) return std::nullopt;
  return static_cast<long>(missing->size());
}

struct Outage {
  WallClock::time_point killed_at;
  WriteAttempt resumed;
};

// Starts the probe, runs `kill` (a tandem command) at a random point of the agent's cycle after
// a second of writes, and waits until writes resume.
Result<Outage> outage_after(const BenchCluster& cluster, WriteProbe& probe,
                            const std::vector<std::string>& kill) {
  probe.start();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  random_cycle_offset(cluster.config().ha.loop_interval);
  auto killed_at = WallClock::now();
  if (auto ok = cluster.tandem_ok(kill); !ok) return std::unexpected(ok.error());
  std::optional<WriteAttempt> resumed;
  if (!wait_for([&] { return (resumed = resumed_after(probe, killed_at)).has_value(); },
                std::chrono::seconds(60))) {
    return failed(fmt::format("writes did not resume after `tandem {}`", fmt::join(kill, " ")));
  }
  return Outage{killed_at, *resumed};
}

// Where a failover's time goes (issue 19), as the new primary's agent logs it: "NODE promoted;
// it accepts writes (N ms)", N from asking PostgreSQL to promote until it takes writes. Log lines:
// "2026-12-05T08:07:12.691 info: message", in local time. Before the promotion: the lease lapsing,
// the standby's agent seeing it, taking the lease and claiming the timeline; after: the client's
// reconnection.
struct FailoverSteps {
  std::optional<WallClock::time_point> promoted;
  double promote_seconds = 0;
};

std::optional<WallClock::time_point> log_time(const std::string& line) {
  std::tm parts{};
  int millis = 0;
  if (line.size() < 23 || !strptime(line.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &parts) ||
      line[19] != '.' || std::sscanf(line.c_str() + 20, "%3d", &millis) != 1) {
    return std::nullopt;
  }
  parts.tm_isdst = -1;
  return WallClock::from_time_t(std::mktime(&parts)) + milliseconds(millis);
}

FailoverSteps failover_steps(const BenchCluster& cluster, WallClock::time_point since) {
  const std::string marker = "promoted; it accepts writes (";
  FailoverSteps steps;
  for (const NodeConfig& node : cluster.config().nodes) {
    std::ifstream log(cluster.config().log_dir + "/" + node.name + ".agent.log");
    for (std::string line; std::getline(log, line);) {
      auto at = log_time(line);
      auto found = line.find(marker);
      // Dated to the millisecond it was written: a fraction of one may precede `since`.
      if (!at || *at < since - milliseconds(1) || found == std::string::npos) continue;
      if (!steps.promoted || *at < *steps.promoted) {
        steps.promoted = *at;
        steps.promote_seconds = std::atof(line.c_str() + found + marker.size()) / 1000.0;
      }
    }
  }
  return steps;
}

// The steps as samples, named after the scenario ("host crash, asynchronous").
std::vector<Sample> step_samples(const std::string& scenario, const FailoverSteps& steps,
                                 WallClock::time_point killed_at, WallClock::time_point resumed) {
  if (!steps.promoted) return {};
  return {{scenario + ": until the promotion was asked for (s)",
           seconds_between(killed_at, *steps.promoted) - steps.promote_seconds},
          {scenario + ": promoting (s)", steps.promote_seconds},
          {scenario + ": from promoted to a write acknowledged (s)",
           seconds_between(*steps.promoted, resumed)}};
}

}  // namespace

std::optional<WriteAttempt> resumed_after(const WriteProbe& probe, WallClock::time_point since) {
  auto failure = probe.first_failure_after(since);
  return failure ? probe.first_success_after(failure->at) : std::nullopt;
}

double write_gap(const WriteProbe& probe, WallClock::time_point asked_at) {
  double gap = 0;
  std::optional<WallClock::time_point> previous;
  std::vector<WriteAttempt> attempts = probe.attempts();
  for (const WriteAttempt& attempt : attempts) {
    if (!attempt.acknowledged) continue;
    if (previous && attempt.answered_at > asked_at - milliseconds(100)) {
      gap = std::max(gap, seconds_between(*previous, attempt.answered_at));
    }
    previous = attempt.answered_at;
  }
  // Writes that never came back before the probe stopped: the gap runs to its last answer.
  if (!attempts.empty()) {
    WallClock::time_point since = previous.value_or(asked_at);
    const WriteAttempt& last = attempts.back();
    gap = std::max(gap, seconds_between(since, std::max(last.at, last.answered_at)));
  }
  return gap;
}

bool wait_for_write_after(const WriteProbe& probe, WallClock::time_point since,
                          milliseconds timeout) {
  return wait_for(
      [&] {
        for (const WriteAttempt& attempt : probe.attempts()) {
          if (attempt.acknowledged && attempt.at >= since) return true;
        }
        return false;
      },
      timeout);
}

Result<std::vector<Sample>> host_crash(const BenchOptions& options, bool synchronous,
                                       FailoverTimeline* timeline, int standbys) {
  auto made = make_cluster(
      options, standbys, [&](ClusterConfig& config) { config.ha.synchronous_mode = synchronous; });
  BenchCluster& cluster = *made;
  if (auto ok = up(cluster); !ok) return std::unexpected(ok.error());
  std::string old_primary = cluster.current_primary();
  if (synchronous && !wait_for(
                         [&] {
                           return cluster.value(old_primary,
                                                "SELECT count(*)::text AS v FROM "
                                                "pg_stat_replication WHERE sync_state = "
                                                "'sync'") == "1";
                         },
                         std::chrono::seconds(30))) {
    return failed("no synchronous standby appeared");
  }
  WriteProbe probe(cluster.any_primary_conninfo(), milliseconds(20));
  auto outage = outage_after(cluster, probe, {"local", "crash", old_primary});
  if (!outage) return std::unexpected(outage.error());
  auto killed_at = outage->killed_at;
  const WriteAttempt* resumed = &outage->resumed;
  std::string new_primary = cluster.current_primary();
  std::this_thread::sleep_for(milliseconds(300));
  probe.stop();
  auto started_at = WallClock::now();
  if (auto ok = cluster.tandem_ok({"local", "start", old_primary}); !ok) {
    return std::unexpected(ok.error());
  }
  if (!wait_for([&] { return cluster.streams(new_primary, old_primary); },
                std::chrono::seconds(60))) {
    return failed("the old primary did not stream again");
  }
  auto back_at = WallClock::now();
  if (timeline != nullptr) {
    timeline->attempts = probe.attempts();
    timeline->killed_at = killed_at;
    timeline->promoted_at = last_promotion(cluster).value_or(resumed->answered_at);
    std::string port = std::to_string(cluster.config().find_node(new_primary)->port);
    for (const WriteAttempt& attempt : timeline->attempts) {
      if (attempt.acknowledged && attempt.answered_at > killed_at && attempt.server_port == port) {
        timeline->first_new_write_at = attempt.answered_at;
        break;
      }
    }
  }
  std::string mode = (synchronous ? "synchronous" : "asynchronous") + nodes_suffix(standbys);
  std::vector<Sample> samples = {
      {"host crash, " + mode + ": writes stopped (s)",
       seconds_between(killed_at, resumed->answered_at), lost_writes(probe, cluster, new_primary),
       static_cast<long>(probe.acknowledged().size())},
      {"old primary streaming after its agent starts" + nodes_suffix(standbys) + " (s)",
       seconds_between(started_at, back_at)}};
  std::vector<Sample> steps = step_samples(
      "host crash, " + mode, failover_steps(cluster, killed_at), killed_at, resumed->answered_at);
  samples.insert(samples.end(), steps.begin(), steps.end());
  return samples;
}

Result<std::vector<Sample>> postmaster_crash(const BenchOptions& options) {
  auto made = make_cluster(options, 2);
  BenchCluster& cluster = *made;
  if (auto ok = up(cluster); !ok) return std::unexpected(ok.error());
  std::string primary = cluster.current_primary();
  WriteProbe probe(cluster.any_primary_conninfo(), milliseconds(20));
  auto outage = outage_after(cluster, probe, {"local", "kill-pg", primary});
  if (!outage) return std::unexpected(outage.error());
  std::this_thread::sleep_for(milliseconds(200));
  probe.stop();
  std::string now_primary = cluster.current_primary();
  return std::vector<Sample>{{"postmaster crash: writes stopped (s)",
                              seconds_between(outage->killed_at, outage->resumed.answered_at),
                              lost_writes(probe, cluster, now_primary),
                              static_cast<long>(probe.acknowledged().size())}};
}

Result<std::vector<Sample>> switchover(const BenchOptions& options) {
  auto made = make_cluster(options, 2);
  BenchCluster& cluster = *made;
  if (auto ok = up(cluster); !ok) return std::unexpected(ok.error());
  WriteProbe probe(cluster.any_primary_conninfo(), milliseconds(20));
  probe.start();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto asked_at = WallClock::now();
  if (auto ok = cluster.tandem_ok({"switchover"}); !ok) return std::unexpected(ok.error());
  if (!wait_for_write_after(probe, WallClock::now(), std::chrono::seconds(60))) {
    return failed("no write was acknowledged after the switchover");
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  probe.stop();
  double gap = write_gap(probe, asked_at);
  return std::vector<Sample>{{"switchover: write gap (s)", gap,
                              lost_writes(probe, cluster, cluster.current_primary()),
                              static_cast<long>(probe.acknowledged().size())}};
}

Result<std::vector<Sample>> idle_agents(const BenchOptions& options, int standbys) {
  auto made = make_cluster(options, standbys);
  BenchCluster& cluster = *made;
  if (auto ok = up(cluster); !ok) return std::unexpected(ok.error());
  std::this_thread::sleep_for(std::chrono::seconds(2));  // settle after the bootstrap
  // An agent is two processes: the agent and the watchdog it forks (issue 19 counts both).
  std::map<std::string, std::pair<std::vector<pid_t>, long>> start;
  for (const NodeConfig& node : cluster.config().nodes) {
    auto pid = running_agent(cluster.config(), node);
    if (!pid) return failed(node.name + "'s agent does not run");
    std::vector<pid_t> processes = with_helpers(*pid);
    start[node.name] = {processes, cpu_ticks(processes)};
  }
  std::string primary = cluster.current_primary();
  std::this_thread::sleep_for(options.idle_for);
  double seconds = std::chrono::duration<double>(options.idle_for).count();
  std::vector<Sample> samples;
  for (const auto& [name, begin] : start) {
    if (!all_alive(begin.first)) return failed(name + "'s agent ended while idle");
    std::vector<Sample> cost = idle_cost(begin.first, begin.second, seconds);
    // And the CPU by role: a standby at rest sleeps between cycles, the primary does not
    // (core/observe_rest.h).
    cost.push_back({name == primary ? "agent CPU, idle, the primary (% of a core)"
                                    : "agent CPU, idle, a standby (% of a core)",
                    cost.back().seconds});
    for (Sample& sample :
         cost) {  // "agent CPU, idle (% ...)" -> "agent CPU, idle, 9 nodes (% ...)"
      auto unit = sample.scenario.rfind(" (");
      if (unit != std::string::npos) sample.scenario.insert(unit, nodes_suffix(standbys));
    }
    samples.insert(samples.end(), cost.begin(), cost.end());
  }
  return samples;
}

bool all_alive(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line) || line.rfind(')') == std::string::npos) return false;
    if (line.substr(line.rfind(')') + 2, 1) == "Z") return false;  // a zombie counts nothing
  }
  return true;
}

std::vector<pid_t> with_helpers(pid_t pid) {
  auto program = [](pid_t of) {
    std::ifstream in("/proc/" + std::to_string(of) + "/comm");
    std::string name;
    std::getline(in, name);
    return name;
  };
  std::vector<pid_t> processes = {pid};
  for (pid_t child : children_of(pid)) {
    if (program(child).starts_with(program(pid))) processes.push_back(child);  // tandem-watchdog
  }
  return processes;
}

long cpu_ticks(const std::vector<pid_t>& pids) {
  long ticks = 0;
  for (pid_t pid : pids) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(in, line);
    if (line.rfind(')') == std::string::npos) continue;
    std::istringstream fields(line.substr(line.rfind(')') + 2));
    std::string field;
    for (int index = 3; fields >> field; ++index) {
      if (index == 14 || index == 15) ticks += std::stol(field);  // utime, stime
    }
  }
  return ticks;
}

namespace {

double rss_mib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0.0;
}

// Memory as users count it (issue 19): RSS counts every page of the shared libraries the
// agent maps; PSS divides each shared page among the processes that map it, and private
// memory is the agent's alone (what stopping it gives back). kB in /proc/PID/smaps_rollup.
double smaps_mib(pid_t pid, std::initializer_list<std::string_view> fields) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  double kib = 0;
  while (std::getline(in, line)) {
    for (std::string_view field : fields) {
      if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':') {
        kib += std::stod(line.substr(field.size() + 1));
      }
    }
  }
  return kib / 1024.0;
}

}  // namespace

std::vector<Sample> idle_cost(const std::vector<pid_t>& pids, long ticks_before, double seconds) {
  double cpu = 100.0 * static_cast<double>(cpu_ticks(pids) - ticks_before) /
               static_cast<double>(sysconf(_SC_CLK_TCK)) / seconds;
  double rss = 0, pss = 0, private_mib = 0;
  for (pid_t pid : pids) {
    rss += rss_mib(pid);
    pss += smaps_mib(pid, {"Pss"});
    private_mib += smaps_mib(pid, {"Private_Clean", "Private_Dirty"});
  }
  return {{"agent RSS, idle (MiB)", rss},
          {"agent PSS, idle (MiB)", pss},
          {"agent private memory, idle (MiB)", private_mib},
          {"agent CPU, idle (% of a core)", cpu}};
}

namespace {

// About size_mb of table data on the primary.
void fill(const BenchCluster& cluster, const std::string& primary, int size_mb) {
  cluster.exec(primary, fmt::format("CREATE TABLE fill AS SELECT g, repeat('x', 1000) AS pad "
                                    "FROM generate_series(1, {}) g; CHECKPOINT",
                                    size_mb * 900));
}

// fill() on node1, then until node2 has it all.
void fill_and_replicate(const BenchCluster& cluster, int size_mb) {
  fill(cluster, "node1", size_mb);
  wait_for(
      [&] {
        return cluster.value("node2", "SELECT count(*)::text AS v FROM fill") ==
               std::to_string(size_mb * 900);
      },
      std::chrono::minutes(5));
}

// The cluster's backup.repository, made for its OS user.
Status make_repository(const BenchCluster& cluster) {
  auto os_user = lookup_os_user(cluster.config().os_user);
  if (!os_user) return std::unexpected(os_user.error());
  return ensure_owned_dir(cluster.config().backup.repository, *os_user, 0700);
}

template <typename F>
Result<double> timed(F action) {
  // What the steps before left dirty (a table of gigabytes loaded seconds ago) is written out
  // first: a step that syncs — pg_basebackup, pg_rewind — would otherwise pay for it, and
  // which of two compared steps came first would decide between them.
  ::sync();
  auto start = std::chrono::steady_clock::now();
  if (auto ok = action(); !ok) return std::unexpected(ok.error());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A program run as the cluster's OS user; fails with its output unless it exits 0.
Status run_as_os_user(const BenchCluster& cluster, const std::string& program,
                      std::vector<std::string> args) {
  SystemProcessRunner runner;
  auto result = runner.run({.program = program,
                            .args = std::move(args),
                            .env = {{"PGPASSFILE", cluster.config().password_file}},
                            .run_as = cluster.config().os_user,
                            .working_dir = "/tmp",
                            .timeout = std::chrono::minutes(30)});
  if (!result) return std::unexpected(result.error());
  if (result->exit_code != 0) {
    return fail(ErrorCode::kFailed, fmt::format("{} failed: {}", program, result->output));
  }
  return {};
}

Status move_aside(const BenchCluster& cluster, const std::string& node) {
  const NodeConfig* config = cluster.config().find_node(node);
  std::error_code error;
  std::filesystem::rename(config->data_dir, config->data_dir + ".bench-aside", error);
  if (error) return fail(ErrorCode::kFailed, error.message());
  return {};
}

}  // namespace

Result<std::vector<Sample>> clone_time(const BenchOptions& options, int size_mb) {
  BenchCluster cluster(options.tandem_binary, 2,
                       [](ClusterConfig& config) { config.ha.agents = false; });
  if (auto ok = up(cluster); !ok) return std::unexpected(ok.error());
  fill(cluster, "node1", size_mb);
  if (auto ok = cluster.tandem_ok({"local", "stop", "node3"}); !ok)
    return std::unexpected(ok.error());
  if (auto ok = move_aside(cluster, "node3"); !ok) return std::unexpected(ok.error());
  auto clone = timed([&] { return cluster.tandem_ok({"clone", "node3"}); });
  if (!clone) return std::unexpected(clone.error());
  SystemProcessRunner runner;
  auto binaries = find_pg_binaries(cluster.config().pg_bin, runner);
  if (!binaries) return std::unexpected(binaries.error());
  std::string target = cluster.dir() + "/bare-basebackup";
  auto os_user = lookup_os_user(cluster.config().os_user);
  if (!os_user) return std::unexpected(os_user.error());
  if (auto ok = ensure_owned_dir(target, *os_user, 0700); !ok) return std::unexpected(ok.error());
  // pg_basebackup alone does not make a standby: the bare run does what tandem clone does, by
  // hand as the walk-through does (its step 6): a copy with its slot and its primary_conninfo
  // (-R), the server started (pg_ctl -W, and 10 ms looks instead of its 100 ms ones),
  // until the primary reports it streaming. The copy alone is reported beside it.
  const NodeConfig& primary = *cluster.config().find_node("node1");
  std::string copy_conninfo = make_conninfo({{"host", "127.0.0.1"},
                                             {"port", std::to_string(primary.port)},
                                             {"user", cluster.config().replication.user},
                                             {"passfile", cluster.config().password_file},
                                             {"application_name", "bare_by_hand"}});
  std::optional<double> copied;
  int bare_port = find_free_ports("127.0.0.1", 1).value_or(0);
  auto bare = timed([&]() -> Status {
    auto started = std::chrono::steady_clock::now();
    if (auto ok =
            run_as_os_user(cluster, binaries->path("pg_basebackup"),
                           {"-D", target, "-X", "stream", "--checkpoint=fast", "-R",
                            "--create-slot", "--slot=bare_by_hand", "--dbname=" + copy_conninfo});
        !ok) {
      return ok;
    }
    copied = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (auto ok = run_as_os_user(cluster, binaries->path("pg_ctl"),
                                 {"-D", target, "-W", "-l", target + "/startup.log", "-o",
                                  fmt::format("-p {} -k {} -c listen_addresses=127.0.0.1",
                                              bare_port, cluster.config().socket_dir),
                                  "start"});
        !ok) {
      return ok;
    }
    if (!wait_for([&] { return cluster.streams("node1", "bare_by_hand"); },
                  std::chrono::seconds(60))) {
      return fail(ErrorCode::kTimeout, "the standby copied by hand did not stream in 60 s");
    }
    return {};
  });
  (void)run_as_os_user(cluster, binaries->path("pg_ctl"),
                       {"-D", target, "-m", "immediate", "-w", "stop"});
  if (!bare) return std::unexpected(bare.error());
  std::string size = fmt::format("{} MB", size_mb);
  return std::vector<Sample>{
      {"clone " + size + ": tandem clone (s)", *clone},
      {"clone " + size + ": bare pg_basebackup, start, until streaming (s)", *bare},
      {"clone " + size + ": of which pg_basebackup (s)", copied.value_or(0)},
      {"clone " + size + ": tandem / bare", *clone / *bare}};
}

Result<std::vector<Sample>> rejoin_time(const BenchOptions& options, int size_mb) {
  BenchCluster cluster(options.tandem_binary, 1,
                       [](ClusterConfig& config) { config.ha.agents = false; });
  if (auto ok = up(cluster); !ok) return std::unexpected(ok.error());
  fill_and_replicate(cluster, size_mb);
  // A table as a running database has it: vacuumed, its hint bits set. Freshly loaded and never
  // read, every page of it would be written to the WAL whole (data checksums) by the first scan
  // after the failover — the UPDATE below — and the rewound node would replay the whole table:
  // that measured the first read of new data, not what a rewind costs (issue 19.6).
  // Apart: VACUUM refuses to run in the transaction a string of statements makes.
  auto connection = cluster.sql("node1");
  if (!connection) return std::unexpected(connection.error());
  for (const char* statement : {"VACUUM fill", "CHECKPOINT"}) {
    if (auto ok = connection->execute(statement); !ok) return std::unexpected(ok.error());
  }
  auto vacuumed = cluster.value("node1", "SELECT pg_current_wal_lsn()::text AS v");
  if (!vacuumed) return failed("no WAL position on node1");
  if (!wait_for(
          [&] {
            return cluster.value("node2", fmt::format("SELECT (pg_last_wal_replay_lsn() >= '{}')"
                                                      "::text AS v",
                                                      *vacuumed)) == "true";
          },
          std::chrono::minutes(5))) {
    return failed("node2 did not replay the VACUUM");
  }
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"local", "crash", "node1"}, {"promote", "node2"}}) {
    if (auto ok = cluster.tandem_ok(args); !ok) return std::unexpected(ok.error());
  }
  auto forked = cluster.value("node2", "SELECT pg_current_wal_lsn()::text AS v");
  cluster.exec("node2", "UPDATE fill SET pad = 'y' WHERE g % 1000 = 0");
  auto since_fork = cluster.value(
      "node2", fmt::format("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{}')::text AS v",
                           forked.value_or("0/0")));
  // pg_rewind copies every WAL segment of the source whole, recycled ones too: how much there is.
  auto source_wal = cluster.value("node2", "SELECT sum(size)::text AS v FROM pg_ls_waldir()");
  CommandOutput rejoined;
  auto rewind = timed([&]() -> Status {
    rejoined = cluster.tandem({"rejoin", "node1"});
    if (rejoined.exit_code == 0) return {};
    return fail(ErrorCode::kFailed, "tandem rejoin node1 failed: " + rejoined.output);
  });
  if (!rewind) return std::unexpected(rewind.error());
  // Its own step, as `tandem rejoin` says it: "pg_rewind node1 from node2: done in 3.68 s".
  std::smatch step;
  static const std::regex kRewindStep(R"(pg_rewind node1 from node2: done in ([0-9.]+) s)");
  if (!std::regex_search(rejoined.output, step, kRewindStep)) {
    return failed("tandem rejoin said no pg_rewind time: " + rejoined.output);
  }
  double rewind_step = std::stod(step[1].str());
  if (auto ok = cluster.tandem_ok({"local", "stop", "node1"}); !ok)
    return std::unexpected(ok.error());
  if (auto ok = move_aside(cluster, "node1"); !ok) return std::unexpected(ok.error());
  auto reclone = timed([&] { return cluster.tandem_ok({"clone", "node1"}); });
  if (!reclone) return std::unexpected(reclone.error());
  std::string size = fmt::format("{} MB", size_mb);
  double wal_mb = source_wal ? std::stod(*source_wal) / (1 << 20) : 0;
  double written_mb = since_fork ? std::stod(*since_fork) / (1 << 20) : 0;
  return std::vector<Sample>{
      {"rejoin " + size + ": the new primary's pg_wal (MB)", wal_mb},
      {"rejoin " + size + ": WAL the new primary wrote since (MB)", written_mb},
      {"rejoin " + size + ": by pg_rewind (s)", *rewind},
      {"rejoin " + size + ": of which pg_rewind itself (s)", rewind_step},
      {"rejoin " + size + ": by reclone (s)", *reclone},
      {"rejoin " + size + ": rewind / reclone", *rewind / *reclone}};
}

namespace {

// What someone running pgBackRest by hand does for a copy promoted at the backup's end: restore,
// drop the standby.signal a backup from a standby carries, start it on a port of its own with
// no archiving, and wait until it takes writes.
Status bare_restore(const BenchCluster& cluster, const std::string& pg_ctl, const std::string& conf,
                    const std::string& dir, int port) {
  const ClusterConfig& config = cluster.config();
  if (auto ok = run_as_os_user(
          cluster, config.backup.pgbackrest,
          {"--config=" + conf, "--stanza=" + config.stanza(), "--pg1-path=" + dir,
           "--archive-mode=off", "--type=immediate", "--target-action=promote", "restore"});
      !ok) {
    return ok;
  }
  std::filesystem::remove(dir + "/standby.signal");
  if (auto ok = run_as_os_user(cluster, pg_ctl,
                               {"-D", dir, "-l", dir + "/bare.log", "-o",
                                fmt::format("-p {} -c archive_mode=off -c primary_conninfo='' -c "
                                            "synchronous_standby_names=''",
                                            port),
                                "start"});
      !ok) {
    return ok;
  }
  bool promoted = wait_for(
      [&] {
        auto connection = Connection::open(make_conninfo({{"host", config.socket_dir},
                                                          {"port", std::to_string(port)},
                                                          {"user", config.superuser},
                                                          {"dbname", "postgres"},
                                                          {"connect_timeout", "2"}}));
        if (!connection) return false;
        auto rows = connection->query("SELECT pg_is_in_recovery()::text AS v");
        return rows && rows->text(0, "v") == "false";
      },
      std::chrono::minutes(30));
  if (!promoted) return fail(ErrorCode::kTimeout, "the bare restore was not promoted");
  return run_as_os_user(cluster, pg_ctl, {"-D", dir, "-m", "fast", "stop"});
}

}  // namespace

Result<std::vector<Sample>> backup_restore_time(const BenchOptions& options, int size_mb) {
  BenchCluster cluster(options.tandem_binary, 1, [](ClusterConfig& config) {
    config.ha.agents = false;
    config.backup.repository =
        std::filesystem::path(config.nodes.front().data_dir).parent_path().string() + "/repo";
  });
  const ClusterConfig& config = cluster.config();
  if (auto ok = make_repository(cluster); !ok) return std::unexpected(ok.error());
  auto os_user = lookup_os_user(config.os_user);
  if (!os_user) return std::unexpected(os_user.error());
  if (auto ok = up(cluster); !ok) return std::unexpected(ok.error());
  fill_and_replicate(cluster, size_mb);
  const NodeConfig& primary = *config.find_node("node1");
  const NodeConfig& standby = *config.find_node("node2");
  std::string conf = primary.data_dir + "/" + kPgBackRestConfName;
  std::vector<std::string> bare_backup = {"--config=" + conf,
                                          "--stanza=" + config.stanza(),
                                          "--type=full",
                                          "--pg2-path=" + standby.data_dir,
                                          fmt::format("--pg2-port={}", standby.port),
                                          "--pg2-socket-path=" + config.socket_dir,
                                          "--pg2-user=" + config.superuser,
                                          "--backup-standby",
                                          "backup"};
  std::string size = fmt::format("{} MB", size_mb);
  std::vector<Sample> samples;
  double tandem_sum = 0, bare_sum = 0;
  for (int round = 0; round < 2; ++round) {
    auto bare =
        timed([&] { return run_as_os_user(cluster, config.backup.pgbackrest, bare_backup); });
    if (!bare) return std::unexpected(bare.error());
    auto ours = timed([&] { return cluster.tandem_ok({"backup", "--type", "full"}); });
    if (!ours) return std::unexpected(ours.error());
    samples.push_back({"backup " + size + ": tandem backup (s)", *ours});
    samples.push_back({"backup " + size + ": bare pgbackrest backup (s)", *bare});
    tandem_sum += *ours;
    bare_sum += *bare;
  }
  samples.push_back({"backup " + size + ": tandem / bare", tandem_sum / bare_sum});
  tandem_sum = bare_sum = 0;
  int port = find_free_ports("127.0.0.1", 1).value_or(0);
  SystemProcessRunner runner;
  auto binaries = find_pg_binaries(config.pg_bin, runner);
  if (!binaries) return std::unexpected(binaries.error());
  std::string pg_ctl = binaries->path("pg_ctl");
  for (int round = 0; round < 2; ++round) {
    std::string bare_dir = fmt::format("{}/bare-restore-{}", cluster.dir(), round);
    std::string our_dir = fmt::format("{}/restore-{}", cluster.dir(), round);
    if (auto ok = ensure_owned_dir(bare_dir, *os_user, 0700); !ok) {
      return std::unexpected(ok.error());
    }
    auto bare = timed([&] { return bare_restore(cluster, pg_ctl, conf, bare_dir, port); });
    if (!bare) return std::unexpected(bare.error());
    auto ours = timed([&] {
      return cluster.tandem_ok({"restore", "--to", "immediate", "--promote", "--dir", our_dir,
                                "--port", std::to_string(port)});
    });
    if (!ours) return std::unexpected(ours.error());
    if (auto ok = run_as_os_user(cluster, pg_ctl, {"-D", our_dir, "-m", "fast", "stop"}); !ok) {
      return std::unexpected(ok.error());
    }
    samples.push_back({"restore " + size + ": tandem restore (s)", *ours});
    samples.push_back({"restore " + size + ": bare pgbackrest restore and start (s)", *bare});
    tandem_sum += *ours;
    bare_sum += *bare;
  }
  samples.push_back({"restore " + size + ": tandem / bare", tandem_sum / bare_sum});
  return samples;
}

Result<std::vector<Sample>> archive_catch_up_time(const BenchOptions& options, int size_mb) {
  BenchCluster cluster(options.tandem_binary, 1, [](ClusterConfig& config) {
    config.ha.agents = false;
    config.replication.max_slot_wal_keep_size = 32LL << 20;
    config.backup.repository =
        std::filesystem::path(config.nodes.front().data_dir).parent_path().string() + "/repo";
  });
  if (auto ok = make_repository(cluster); !ok) return std::unexpected(ok.error());
  if (auto ok = up(cluster); !ok) return std::unexpected(ok.error());
  fill(cluster, "node1", size_mb);
  if (!wait_for([&] { return cluster.streams("node1", "node2"); }, std::chrono::minutes(5))) {
    return failed("node2 does not stream");
  }
  if (auto ok = cluster.tandem_ok({"local", "stop", "node2"}); !ok) {
    return std::unexpected(ok.error());
  }
  auto left_at = cluster.value("node1", "SELECT pg_current_wal_lsn()::text AS v");
  if (!left_at) return failed("node1's WAL position unread");
  cluster.exec("node1", "CREATE TABLE away (pad text)");
  bool lost = wait_for(
      [&] {
        cluster.exec("node1",
                     "INSERT INTO away SELECT repeat('x', 1000) FROM generate_series(1, 20000); "
                     "SELECT pg_switch_wal(); CHECKPOINT;");
        return cluster.value("node1",
                             "SELECT wal_status AS v FROM pg_replication_slots WHERE "
                             "slot_name = 'node2'") == "lost";
      },
      std::chrono::minutes(3));
  if (!lost) return failed("node2's slot was never lost");
  auto behind = cluster.value(
      "node1", fmt::format("SELECT (pg_current_wal_lsn() - '{}')::bigint::text AS v", *left_at));
  if (auto ok = cluster.tandem_ok({"backup", "check"}); !ok) return std::unexpected(ok.error());
  auto streaming = [&] {
    return wait_for([&] { return cluster.streams("node1", "node2"); }, std::chrono::minutes(10))
               ? Status{}
               : Status(failed("node2 does not stream again"));
  };
  auto catch_up = timed([&]() -> Status {
    if (auto ok = cluster.tandem_ok({"rejoin", "node2"}); !ok) return ok;
    return streaming();
  });
  if (!catch_up) return std::unexpected(catch_up.error());
  if (auto ok = cluster.tandem_ok({"local", "stop", "node2"}); !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = move_aside(cluster, "node2"); !ok) return std::unexpected(ok.error());
  auto reclone = timed([&]() -> Status {
    if (auto ok = cluster.tandem_ok({"clone", "node2"}); !ok) return ok;
    return streaming();
  });
  if (!reclone) return std::unexpected(reclone.error());
  std::string size = fmt::format("{} MB", size_mb);
  double missed_mb = behind ? std::stod(*behind) / (1 << 20) : 0;
  return std::vector<Sample>{{"lost slot " + size + ": WAL written while away (MB)", missed_mb},
                             {"lost slot " + size + ": caught up from the archive (s)", *catch_up},
                             {"lost slot " + size + ": by reclone (s)", *reclone},
                             {"lost slot " + size + ": archive / reclone", *catch_up / *reclone}};
}

}  // namespace tandem::bench
