// tandem-compare (make bench-compare): tandem and Patroni side by side, on this machine in one
// run (issue 19). Both run three PostgreSQL 15 servers on 127.0.0.1 on the same one-member etcd,
// under the same write probe (an INSERT every 20 ms through a multi-host connection string with
// target_session_attrs=read-write), through the same scenarios, each trial on a fresh cluster:
//   host crash        the primary's agent (Patroni daemon) and its PostgreSQL SIGKILLed together
//                     at a random point of the agent's loop: how long writes stop, what is lost,
//                     and how soon the old primary streams again once its agent starts;
//   postmaster crash  the primary's postmaster alone SIGKILLed;
//   switchover        asked of the tool (tandem switchover, patronictl switchover): the write gap;
//   idle agent        CPU and memory (RSS, PSS, private) of each agent of an idle cluster.
// Patroni runs at its defaults (ttl 30, loop_wait 10, retry_timeout 10) and at the fastest it
// accepts (ttl 5, loop_wait 1, retry_timeout 2). Results, naming the commit and the machine:
// OUT/compare.json and OUT/compare.md.
// Usage: tandem-compare [--tandem PATH] [--trials K] [--out DIR] [--idle-seconds S] [--smoke]
//                       [--only tandem|patroni]
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "bench/bench_cluster.h"
#include "bench/patroni_cluster.h"
#include "bench/report.h"
#include "bench/scenarios.h"
#include "common/log.h"
#include "proc/detached.h"
#include "tests/support/etcd_server.h"

namespace {

using namespace tandem;
using namespace tandem::bench;
using std::chrono::milliseconds;
using WallClock = std::chrono::system_clock;

struct Arguments {
  BenchOptions options;
  int trials = 3;
  std::string out = "bench/results";
  bool smoke = false;
  std::string only;  // "tandem" or "patroni": that side alone
};

Result<Arguments> parse(int argc, char** argv) {
  Arguments arguments;
  arguments.options.tandem_binary =
      (std::filesystem::path(own_executable()).parent_path().parent_path() / "tandem").string();
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (flag == "--tandem") {
      arguments.options.tandem_binary = next();
    } else if (flag == "--trials") {
      arguments.trials = std::max(1, std::atoi(next().c_str()));
    } else if (flag == "--out") {
      arguments.out = next();
    } else if (flag == "--idle-seconds") {
      arguments.options.idle_for = std::chrono::seconds(std::max(1, std::atoi(next().c_str())));
    } else if (flag == "--smoke") {
      arguments.smoke = true;
    } else if (flag == "--only") {
      arguments.only = next();
      if (arguments.only != "tandem" && arguments.only != "patroni") {
        return fail(ErrorCode::kInvalidArgument, "--only takes tandem or patroni");
      }
    } else {
      return fail(ErrorCode::kInvalidArgument, "unknown argument " + flag);
    }
  }
  arguments.options.tandem_binary =
      std::filesystem::absolute(arguments.options.tandem_binary).string();
  if (arguments.smoke) {
    arguments.trials = 1;
    arguments.options.idle_for = std::chrono::seconds(3);
  }
  return arguments;
}

double seconds_between(WallClock::time_point from, WallClock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

std::unexpected<Error> failed(const std::string& what) { return fail(ErrorCode::kTimeout, what); }

// A random point of Patroni's loop, as tandem's kill falls at a random point of its cycle.
void random_loop_offset(const PatroniSettings& settings) {
  static std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<long> pick(0, settings.loop_wait * 1000L - 1);
  std::this_thread::sleep_for(milliseconds(pick(random)));
}

std::optional<long> lost_on(const WriteProbe& probe, const PatroniCluster& cluster, int primary) {
  auto missing = probe.missing_on(cluster.conninfo(primary));
  if (!missing) return std::nullopt;
  return static_cast<long>(missing->size());
}

// How long Patroni may take to notice anything: a lapsed leader key, then a loop.
std::chrono::seconds patience(const PatroniSettings& settings) {
  return std::chrono::seconds(settings.ttl + 2 * settings.loop_wait + 60);
}

struct Outage {
  WallClock::time_point killed_at;
  WriteAttempt resumed;
};

// Starts the probe, runs `kill` at a random point of Patroni's loop after a second of writes, and
// waits until writes resume (as tandem's scenarios do, bench/scenarios.cc).
Result<Outage> outage_after(const PatroniSettings& settings, WriteProbe& probe,
                            const std::function<void()>& kill, const std::string& what) {
  probe.start();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  random_loop_offset(settings);
  auto killed_at = WallClock::now();
  kill();
  std::optional<WriteAttempt> resumed;
  if (!wait_for([&] { return (resumed = resumed_after(probe, killed_at)).has_value(); },
                patience(settings))) {
    return failed("writes did not resume after the " + what);
  }
  return Outage{killed_at, *resumed};
}

using PatroniScenario = std::function<Result<std::vector<Sample>>(
    const PatroniSettings&, const std::string& etcd, const BenchOptions&)>;

Result<std::vector<Sample>> patroni_host_crash(const PatroniSettings& settings,
                                               const std::string& etcd, const BenchOptions&) {
  PatroniCluster cluster(settings, etcd);
  if (auto ok = cluster.up(); !ok) return std::unexpected(ok.error());
  int old_primary = cluster.writable().value_or(0);
  WriteProbe probe(cluster.any_primary_conninfo(), milliseconds(20));
  auto outage = outage_after(
      settings, probe, [&] { cluster.crash(old_primary); }, "host crash");
  if (!outage) return std::unexpected(outage.error());
  std::optional<int> new_primary = cluster.writable();
  std::this_thread::sleep_for(milliseconds(300));
  probe.stop();
  if (!new_primary) return failed("no single writable member after the host crash");
  auto started_at = WallClock::now();
  if (auto ok = cluster.start(old_primary); !ok) return std::unexpected(ok.error());
  if (!wait_for([&] { return cluster.streams(*new_primary, old_primary); }, patience(settings))) {
    return failed("the old primary did not stream again");
  }
  auto back_at = WallClock::now();
  return std::vector<Sample>{
      {"host crash, asynchronous: writes stopped (s)",
       seconds_between(outage->killed_at, outage->resumed.answered_at),
       lost_on(probe, cluster, *new_primary), static_cast<long>(probe.acknowledged().size())},
      {"old primary streaming after its agent starts (s)", seconds_between(started_at, back_at)}};
}

Result<std::vector<Sample>> patroni_postmaster_crash(const PatroniSettings& settings,
                                                     const std::string& etcd, const BenchOptions&) {
  PatroniCluster cluster(settings, etcd);
  if (auto ok = cluster.up(); !ok) return std::unexpected(ok.error());
  int primary = cluster.writable().value_or(0);
  WriteProbe probe(cluster.any_primary_conninfo(), milliseconds(20));
  auto outage = outage_after(
      settings, probe, [&] { cluster.kill_postmaster(primary); }, "postmaster crash");
  if (!outage) return std::unexpected(outage.error());
  std::this_thread::sleep_for(milliseconds(200));
  probe.stop();
  std::optional<int> now_primary = cluster.writable();
  if (!now_primary) return failed("no single writable member after the postmaster crash");
  return std::vector<Sample>{{"postmaster crash: writes stopped (s)",
                              seconds_between(outage->killed_at, outage->resumed.answered_at),
                              lost_on(probe, cluster, *now_primary),
                              static_cast<long>(probe.acknowledged().size())}};
}

Result<std::vector<Sample>> patroni_switchover(const PatroniSettings& settings,
                                               const std::string& etcd, const BenchOptions&) {
  PatroniCluster cluster(settings, etcd);
  if (auto ok = cluster.up(); !ok) return std::unexpected(ok.error());
  int primary = cluster.writable().value_or(0);
  WriteProbe probe(cluster.any_primary_conninfo(), milliseconds(20));
  probe.start();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto asked_at = WallClock::now();
  if (auto ok = cluster.switchover(primary, (primary + 1) % cluster.members()); !ok) {
    return std::unexpected(ok.error());
  }
  // As for tandem: a write sent after the command returned must be acknowledged.
  if (!wait_for_write_after(probe, WallClock::now(), patience(settings))) {
    return failed("no write was acknowledged after the switchover");
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  probe.stop();
  std::optional<int> now_primary = cluster.writable();
  if (!now_primary) return failed("no single writable member after the switchover");
  return std::vector<Sample>{{"switchover: write gap (s)", write_gap(probe, asked_at),
                              lost_on(probe, cluster, *now_primary),
                              static_cast<long>(probe.acknowledged().size())}};
}

Result<std::vector<Sample>> patroni_idle(const PatroniSettings& settings, const std::string& etcd,
                                         const BenchOptions& options) {
  PatroniCluster cluster(settings, etcd);
  if (auto ok = cluster.up(); !ok) return std::unexpected(ok.error());
  std::this_thread::sleep_for(std::chrono::seconds(2));  // settle after the bootstrap
  std::vector<std::pair<std::vector<pid_t>, long>> start;
  for (int member = 0; member < cluster.members(); ++member) {
    if (cluster.daemon_pid(member) <= 0) return failed("a Patroni daemon does not run");
    std::vector<pid_t> processes = with_helpers(cluster.daemon_pid(member));
    start.emplace_back(processes, cpu_ticks(processes));
  }
  std::this_thread::sleep_for(options.idle_for);
  double seconds = std::chrono::duration<double>(options.idle_for).count();
  std::vector<Sample> samples;
  for (const auto& [processes, ticks] : start) {
    if (!all_alive(processes)) return failed("a Patroni daemon ended while idle");
    std::vector<Sample> cost = idle_cost(processes, ticks, seconds);
    samples.insert(samples.end(), cost.begin(), cost.end());
  }
  return samples;
}

struct System {
  std::string label;
  std::string settings;
  std::vector<Sample> samples;
  std::map<std::string, int> failed;  // trials that failed, by scenario
};

// One trial of `scenario` on `system`: its samples, or its failure counted.
template <typename Run>
void trial(System& system, const std::string& scenario, Run run, int& failures) {
  fmt::print("  {} {} ... ", system.label, scenario);
  std::fflush(stdout);
  auto result = run();
  if (!result) {
    fmt::print("FAILED: {}\n", result.error().message);
    ++system.failed[scenario];
    ++failures;
    return;
  }
  std::vector<Sample>& samples = system.samples;
  for (const Sample& sample : *result) {
    fmt::print(
        "{}: {:.3f}{} ", sample.scenario, sample.seconds,
        sample.lost ? fmt::format(" ({} of {} lost)", *sample.lost, sample.acknowledged) : "");
    samples.push_back(sample);
  }
  fmt::print("\n");
  std::fflush(stdout);
}

const std::vector<std::string>& measures() {
  static const std::vector<std::string> all = {"host crash, asynchronous: writes stopped (s)",
                                               "postmaster crash: writes stopped (s)",
                                               "switchover: write gap (s)",
                                               "old primary streaming after its agent starts (s)",
                                               "agent CPU, idle (% of a core)",
                                               "agent RSS, idle (MiB)",
                                               "agent PSS, idle (MiB)",
                                               "agent private memory, idle (MiB)"};
  return all;
}

std::optional<Summary> summary_of(const System& system, const std::string& measure) {
  for (const Summary& summary : summarize(system.samples)) {
    if (summary.scenario == measure) return summary;
  }
  return std::nullopt;
}

std::string cell(const std::optional<Summary>& summary) {
  if (!summary) return "-";  // not run, or every trial failed (listed below the table)
  std::string text =
      summary->values.size() == 1
          ? fmt::format("{:.3f}", summary->median)
          : fmt::format("{:.3f} ({:.3f}-{:.3f})", summary->median, summary->min, summary->max);
  if (!summary->lost.empty()) {
    long lost = 0;
    for (long each : summary->lost) lost += each;
    text += fmt::format(", {} lost", lost);
  }
  return text;
}

std::string report_markdown(const std::vector<System>& systems, const std::string& machine,
                            const std::string& command, const std::string& source, int trials) {
  std::string text = fmt::format(
      "# tandem and Patroni side by side\n\n"
      "Measured on {} with `{}`, from {}, {} trial(s) of each scenario per system, every "
      "trial on a fresh cluster: three PostgreSQL 15 servers on 127.0.0.1 on one etcd (heartbeat "
      "100 ms, election 500 ms), an INSERT every 20 ms through a multi-host connection string "
      "(target_session_attrs=read-write). Median (min-max); an agent's figures count every "
      "process of it (tandem's agent and its watchdog; Patroni's daemon). Ratio: the other "
      "system's median over tandem's.\n\n"
      "| measure |",
      machine, command, source, trials);
  for (const System& system : systems) text += fmt::format(" {} |", system.label);
  for (std::size_t index = 1; index < systems.size(); ++index) {
    text += fmt::format(" {} / tandem |", systems[index].label);
  }
  text += "\n|---|";
  for (std::size_t index = 0; index < 2 * systems.size() - 1; ++index) text += "---|";
  text += "\n";
  for (const std::string& measure : measures()) {
    text += "| " + measure + " |";
    std::vector<std::optional<Summary>> summaries;
    for (const System& system : systems) {
      summaries.push_back(summary_of(system, measure));
      text += " " + cell(summaries.back()) + " |";
    }
    for (std::size_t index = 1; index < systems.size(); ++index) {
      bool both = summaries[0] && summaries[index] && summaries[0]->median > 0;
      text +=
          both ? fmt::format(" {:.1f} |", summaries[index]->median / summaries[0]->median) : " - |";
    }
    text += "\n";
  }
  text += "\nSettings, and the trials that failed (not in the figures above):\n";
  for (const System& system : systems) {
    std::string failed;
    for (const auto& [scenario, count] : system.failed) {
      failed += fmt::format("{}{} {} of {}", failed.empty() ? "" : ", ", scenario, count,
                            scenario == "idle" ? 1 : trials);
    }
    text += fmt::format("- {}: {}; failed: {}\n", system.label, system.settings,
                        failed.empty() ? "none" : failed);
  }
  return text;
}

std::string report_json(const std::vector<System>& systems, const std::string& machine,
                        const std::string& command, const std::string& source) {
  nlohmann::json out = {{"commit", commit_of(source)},
                        {"source", source},
                        {"machine", machine},
                        {"command", command},
                        {"systems", nlohmann::json::array()}};
  for (const System& system : systems) {
    nlohmann::json measures_json = nlohmann::json::object();
    for (const std::string& measure : measures()) {
      auto summary = summary_of(system, measure);
      if (!summary) continue;
      measures_json[measure] = {
          {"median", summary->median}, {"min", summary->min},
          {"max", summary->max},       {"values", summary->values},
          {"lost", summary->lost},     {"acknowledged", summary->acknowledged}};
    }
    out["systems"].push_back({{"label", system.label},
                              {"settings", system.settings},
                              {"measures", measures_json},
                              {"failed_trials", system.failed}});
  }
  return out.dump(2) + "\n";
}

}  // namespace

int main(int argc, char** argv) {
  init_logging(false);
  auto arguments = parse(argc, argv);
  if (!arguments) {
    fmt::print(stderr, "tandem-compare: {}\n", arguments.error().message);
    return 2;
  }
  // The code measured, read before the trials.
  std::string source = describe_source(arguments->options.tandem_binary);
  if (!std::filesystem::exists("/usr/bin/patroni")) {
    fmt::print(stderr, "tandem-compare: Debian's patroni is not installed\n");
    return 2;
  }
  char pattern[] = "/tmp/tandem-compare-etcd-XXXXXX";
  std::string etcd_dir = mkdtemp(pattern);
  auto etcd = testing::EtcdCluster::single(etcd_dir);
  if (!etcd->healthy()) {
    fmt::print(stderr, "tandem-compare: etcd did not start (see {})\n", etcd_dir);
    return 1;
  }
  // Patroni's etcd3.hosts: host:port, without a scheme.
  std::string endpoint =
      fmt::format("{}:{}", etcd->members()[0].host, etcd->members()[0].client_port);
  BenchOptions options = arguments->options;
  int cluster_number = 0;
  options.adjust = [&](ClusterConfig& config) {
    config.etcd.endpoints = etcd->endpoints();
    config.name = fmt::format("compare{}", ++cluster_number);  // a fresh cluster in etcd
  };
  std::vector<System> systems = {{"tandem", "etcd; ha: loop 100 ms, lease 1 s (its defaults)", {}}};
  std::vector<PatroniSettings> patronis = {patroni_fastest()};
  if (!arguments->smoke) patronis.push_back(patroni_defaults());
  for (const PatroniSettings& settings : patronis) {
    systems.push_back({settings.label,
                       fmt::format("etcd3; ttl {}, loop_wait {}, retry_timeout {}, use_pg_rewind, "
                                   "use_slots",
                                   settings.ttl, settings.loop_wait, settings.retry_timeout),
                       {}});
  }
  int failures = 0;
  for (int k = 1; k <= arguments->trials; ++k) {
    fmt::print("trial {} of {}\n", k, arguments->trials);
    if (arguments->only != "patroni") {
      System& ours = systems[0];
      trial(
          ours, "host crash", [&] { return host_crash(options, false, nullptr); }, failures);
      trial(
          ours, "postmaster crash", [&] { return postmaster_crash(options); }, failures);
      trial(
          ours, "switchover", [&] { return switchover(options); }, failures);
    }
    for (std::size_t index = 0; index < patronis.size() && arguments->only != "tandem"; ++index) {
      const PatroniSettings& settings = patronis[index];
      for (const auto& [what, run] : std::vector<std::pair<std::string, PatroniScenario>>{
               {"host crash", patroni_host_crash},
               {"postmaster crash", patroni_postmaster_crash},
               {"switchover", patroni_switchover}}) {
        trial(
            systems[index + 1], what, [&] { return run(settings, endpoint, options); }, failures);
      }
    }
  }
  if (arguments->only != "patroni") {
    trial(
        systems[0], "idle", [&] { return idle_agents(options); }, failures);
  }
  for (std::size_t index = 0; index < patronis.size() && arguments->only != "tandem"; ++index) {
    trial(
        systems[index + 1], "idle",
        [&] { return patroni_idle(patronis[index], endpoint, options); }, failures);
  }
  std::string machine = describe_machine();
  std::string command = arguments->smoke
                            ? "tandem-compare --smoke"
                            : fmt::format("make bench-compare TRIALS={}", arguments->trials);
  std::filesystem::create_directories(arguments->out);
  std::string markdown = report_markdown(systems, machine, command, source, arguments->trials);
  std::ofstream(arguments->out + "/compare.md") << markdown;
  std::ofstream(arguments->out + "/compare.json") << report_json(systems, machine, command, source);
  fmt::print("\n{}\nwritten to {}/compare.md and compare.json\n", markdown, arguments->out);
  etcd.reset();
  std::error_code error;
  std::filesystem::remove_all(etcd_dir, error);
  return failures == 0 ? 0 : 1;
}
