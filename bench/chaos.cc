// tandem-chaos: random faults on local clusters with agents, one per trial, under a write probe
// through the multi-host connection string and a writer per node that catches two writable
// nodes; part of the trials on a starved machine (busy loops on every core, SIGSTOP/SIGCONT
// bursts of the agents and postmasters). Prints and writes, per fault: trials, outage (the longest
// time without an acknowledged write from the fault on) median and max, time until every node
// streams again, acknowledged writes lost, split brains, failures to recover, and promotions beyond
// one per fault. Usage: tandem-chaos [--tandem PATH] [--trials K] [--out DIR] [--smoke] [--seed N]
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "bench/bench_cluster.h"
#include "bench/node_writers.h"
#include "bench/report.h"
#include "bench/starver.h"
#include "bench/write_probe.h"
#include "common/log.h"
#include "local/local_agents.h"
#include "proc/detached.h"

namespace {

using namespace tandem;
using namespace tandem::bench;
using std::chrono::milliseconds;
using WallClock = std::chrono::system_clock;

const std::vector<std::string> kFaults = {"host crash",      "postmaster kill", "agent SIGKILL",
                                          "agent SIGSTOP",   "clean stop",      "switchover",
                                          "double crash",    "standby crash",   "store outage",
                                          "full stop/start", "full crash"};
// A smoke run's three trials: a host crash in synchronous mode (nothing acknowledged may be
// lost), a switchover, and the primary's agent frozen on a starved machine.
const std::vector<std::string> kSmokeFaults = {"host crash", "switchover", "agent SIGSTOP"};

struct Trial {
  std::string fault;
  bool synchronous = false;
  bool starved = false;
  std::optional<double> outage_s;     // the longest time without an acknowledged write
  std::optional<double> streaming_s;  // from the fault until every node streams
  long acknowledged = 0;
  std::optional<long> lost;
  std::vector<std::string> split_brains;
  std::vector<std::string> late;  // NodeWriters::late(): in flight through a stall
  int extra_promotions = 0;
  bool timelines_distinct = true;
  std::string failure;  // why it did not recover, "" when it did
};

std::optional<double> seconds_since(WallClock::time_point from,
                                    std::optional<WallClock::time_point> to) {
  if (!to) return std::nullopt;
  return std::chrono::duration<double>(*to - from).count();
}

bool all_stream(const BenchCluster& cluster, std::string& primary) {
  primary = cluster.current_primary();
  if (primary.empty()) return false;
  for (const NodeConfig& node : cluster.config().nodes) {
    if (node.name != primary && !cluster.streams(primary, node.name)) return false;
  }
  return true;
}

// Carries out the fault; returns how many promotions it may cause.
int inflict(const std::string& fault, BenchCluster& cluster, std::mt19937& random,
            Starver* starver) {
  std::string primary = cluster.current_primary();
  const ClusterConfig& config = cluster.config();
  auto agent_of = [&](const std::string& name) {
    return running_agent(config, *config.find_node(name));
  };
  if (fault == "host crash") {
    (void)cluster.tandem({"local", "crash", primary});
  } else if (fault == "postmaster kill") {
    (void)cluster.tandem({"local", "kill-pg", primary});
    return 0;  // restarted in place
  } else if (fault == "agent SIGKILL") {
    if (auto pid = agent_of(primary)) kill(*pid, SIGKILL);
  } else if (fault == "agent SIGSTOP") {
    if (auto pid = agent_of(primary)) {
      // Frozen for the whole 3 s: the starver's bursts leave it alone meanwhile.
      if (starver != nullptr) starver->hold(*pid);
      kill(*pid, SIGSTOP);
      std::this_thread::sleep_for(milliseconds(3000));
      kill(*pid, SIGCONT);
      if (starver != nullptr) starver->release(*pid);
    }
  } else if (fault == "clean stop") {
    (void)cluster.tandem({"local", "stop", primary});
  } else if (fault == "switchover") {
    (void)cluster.tandem({"switchover"});
  } else if (fault == "double crash") {
    (void)cluster.tandem({"local", "crash", primary});
    std::string next;
    wait_for([&] { return !(next = cluster.current_primary()).empty() && next != primary; },
             std::chrono::seconds(20));
    if (!next.empty()) (void)cluster.tandem({"local", "crash", next});
    return 2;
  } else if (fault == "standby crash") {
    (void)cluster.tandem({"local", "crash", cluster.other_than(primary)});
    return 0;
  } else if (fault == "store outage") {
    // Another process holds the store's write lock for three seconds.
    std::string store = config.store_file;
    pid_t holder = fork();
    if (holder == 0) {
      execlp("sqlite3", "sqlite3", store.c_str(), "BEGIN EXCLUSIVE;", ".shell sleep 3", "COMMIT;",
             static_cast<char*>(nullptr));
      _exit(127);
    }
    waitpid(holder, nullptr, 0);
    return 1;  // the primary is fenced meanwhile; its lease may go to another
  } else if (fault == "full stop/start") {
    (void)cluster.tandem({"local", "down"});
    (void)cluster.tandem({"local", "up", "--dir", cluster.dir()});
    return 1;
  } else if (fault == "full crash") {
    for (const NodeConfig& node : config.nodes) (void)cluster.tandem({"local", "crash", node.name});
    std::this_thread::sleep_for(milliseconds(500 + random() % 1500));
    (void)cluster.tandem({"local", "start"});
  }
  return 1;
}

// `sync_count`: ha.synchronous_node_count of the synchronous trials.
Trial run_trial(const std::string& tandem, const std::string& fault, bool synchronous, bool starved,
                int sync_count, std::mt19937& random) {
  Trial trial{.fault = fault, .synchronous = synchronous, .starved = starved};
  BenchCluster cluster(tandem, 2, [&](ClusterConfig& config) {
    config.ha.synchronous_mode = synchronous;
    if (synchronous) config.ha.synchronous_node_count = sync_count;
  });
  if (auto ok = cluster.tandem_ok({"local", "up", "--dir", cluster.dir()}); !ok) {
    trial.failure = "local up: " + ok.error().message;
    return trial;
  }
  cluster.exec(cluster.current_primary(), "CREATE TABLE chaos_writer (i int)");
  WriteProbe probe(cluster.any_primary_conninfo(), milliseconds(20));
  NodeWriters writers(cluster.config());
  probe.start();
  std::this_thread::sleep_for(milliseconds(1500 + random() % 500));
  auto history_before =
      nlohmann::json::parse(cluster.tandem({"history", "--json"}).output, nullptr, false);
  std::optional<Starver> starver;
  if (starved) starver.emplace(cluster.config());
  auto at = WallClock::now();
  int allowed = inflict(fault, cluster, random, starver ? &*starver : nullptr);
  // Whatever was stopped or crashed starts again two seconds later, as an operator would.
  std::this_thread::sleep_for(milliseconds(2000));
  starver.reset();
  (void)cluster.tandem({"local", "start"});
  std::string primary;
  bool recovered = wait_for([&] { return all_stream(cluster, primary); }, std::chrono::seconds(90));
  auto streaming_at = WallClock::now();
  if (recovered) trial.streaming_s = seconds_since(at, streaming_at);
  std::this_thread::sleep_for(milliseconds(300));
  // Until every node streams again (or the wait's end), the longest time without an
  // acknowledged write: a stall counts as a refusal does.
  trial.outage_s =
      std::chrono::duration<double>(probe.longest_without_write(at, WallClock::now())).count();
  probe.stop();
  writers.stop();
  trial.split_brains = writers.overlaps();
  trial.late = writers.late();
  trial.acknowledged = static_cast<long>(probe.acknowledged().size());
  if (!recovered) {
    trial.failure = "not every node streams from one primary 90 s after the fault";
    return trial;
  }
  if (auto missing = probe.missing_on(cluster.conninfo(primary))) {
    trial.lost = static_cast<long>(missing->size());
  } else {
    trial.failure = "the final primary " + primary + " cannot be read";
  }
  auto history =
      nlohmann::json::parse(cluster.tandem({"history", "--json"}).output, nullptr, false);
  if (!history.is_array() || !history_before.is_array()) {
    trial.failure = "`tandem history --json` printed no history";
  } else {
    int promotions = static_cast<int>(history.size() - history_before.size());
    trial.extra_promotions = std::max(0, promotions - allowed);
    std::set<long> timelines;
    for (const auto& entry : history) {
      trial.timelines_distinct &= timelines.insert(entry["timeline"].get<long>()).second;
    }
  }
  return trial;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

nlohmann::json summary(const std::vector<Trial>& trials, std::string& markdown) {
  nlohmann::json out = nlohmann::json::array();
  markdown +=
      "| fault | trials (sync / starved) | outage median / max (s) | all streaming median / max "
      "(s) | acknowledged writes lost (async / sync) | split brains | extra promotions | "
      "timeline reused | failures to recover |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const std::string& fault : kFaults) {
    std::vector<double> outages, streaming;
    long lost_async = 0, lost_sync = 0, split = 0, extra = 0, reused = 0, failures = 0;
    int count = 0, sync = 0, starved = 0;
    for (const Trial& trial : trials) {
      if (trial.fault != fault) continue;
      ++count;
      sync += trial.synchronous;
      starved += trial.starved;
      if (trial.outage_s) outages.push_back(*trial.outage_s);
      if (trial.streaming_s) streaming.push_back(*trial.streaming_s);
      (trial.synchronous ? lost_sync : lost_async) += trial.lost.value_or(0);
      split += static_cast<long>(trial.split_brains.size());
      extra += trial.extra_promotions;
      reused += !trial.timelines_distinct;
      failures += !trial.failure.empty();
    }
    if (count == 0) continue;
    auto max_of = [](const std::vector<double>& v) {
      return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
    };
    out.push_back({{"fault", fault},
                   {"trials", count},
                   {"synchronous", sync},
                   {"starved", starved},
                   {"outage_median_s", median(outages)},
                   {"outage_max_s", max_of(outages)},
                   {"all_streaming_median_s", median(streaming)},
                   {"all_streaming_max_s", max_of(streaming)},
                   {"lost_async", lost_async},
                   {"lost_sync", lost_sync},
                   {"split_brains", split},
                   {"extra_promotions", extra},
                   {"timeline_reused", reused},
                   {"failures_to_recover", failures}});
    markdown += fmt::format(
        "| {} | {} ({} / {}) | {:.2f} / {:.2f} | {:.1f} / {:.1f} | {} / {} | {} | "
        "{} | {} | {} |\n",
        fault, count, sync, starved, median(outages), max_of(outages), median(streaming),
        max_of(streaming), lost_async, lost_sync, split, extra, reused, failures);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tandem =
      (std::filesystem::path(own_executable()).parent_path().parent_path() / "tandem").string();
  int trials = 110;
  std::string out = "bench/results";
  unsigned seed = std::random_device{}();
  bool smoke = false;
  bool all_synchronous = false;
  int sync_count = 1;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (flag == "--tandem") {
      tandem = next();
    } else if (flag == "--trials") {
      trials = std::max(1, std::atoi(next().c_str()));
    } else if (flag == "--out") {
      out = next();
    } else if (flag == "--smoke") {
      trials = 3;
      smoke = true;
    } else if (flag == "--synchronous") {  // every trial synchronous
      all_synchronous = true;
    } else if (flag == "--synchronous-node-count") {  // both standbys synchronous with 2
      sync_count = std::max(1, std::atoi(next().c_str()));
    } else if (flag == "--seed") {
      seed = static_cast<unsigned>(std::atol(next().c_str()));
    } else {
      fmt::print(stderr, "tandem-chaos: unknown argument {}\n", flag);
      return 2;
    }
  }
  tandem = std::filesystem::absolute(tandem).string();
  std::mt19937 random(seed);
  // The code run is the code built now: its commit read before the trials, not after.
  std::string source = describe_source(tandem);
  std::vector<Trial> results;
  for (int k = 0; k < trials; ++k) {
    const std::string& fault = smoke ? kSmokeFaults[k] : kFaults[k % kFaults.size()];
    // Every other fault cycle synchronous; in a smoke run, the host crash.
    bool synchronous = all_synchronous || (smoke ? k == 0 : (k / kFaults.size()) % 2 == 1);
    bool starved = k % 3 == 2;
    Trial trial = run_trial(tandem, fault, synchronous, starved, sync_count, random);
    fmt::print(
        "trial {:3} {:16} {:5} {:7} outage {:5.2f} s, streaming {:5.1f} s, lost {}, "
        "split brains {}, extra promotions {}{}\n",
        k + 1, fault, synchronous ? "sync" : "async", starved ? "starved" : "",
        trial.outage_s.value_or(-1), trial.streaming_s.value_or(-1),
        trial.lost ? std::to_string(*trial.lost) : "?", trial.split_brains.size(),
        trial.extra_promotions, trial.failure.empty() ? "" : " FAILED: " + trial.failure);
    for (const std::string& overlap : trial.split_brains) fmt::print("    {}\n", overlap);
    for (const std::string& late : trial.late) fmt::print("    {}\n", late);
    std::fflush(stdout);
    results.push_back(std::move(trial));
  }
  std::string command =
      smoke ? "make chaos-smoke" : fmt::format("make chaos TRIALS={} (seed {})", trials, seed);
  if (all_synchronous || sync_count != 1) {
    command = fmt::format(
        "tandem-chaos --trials {} --seed {}{}{} --out {}", trials, seed,
        all_synchronous ? " --synchronous" : "",
        sync_count != 1 ? fmt::format(" --synchronous-node-count {}", sync_count) : std::string(),
        out);
  }
  std::string markdown = fmt::format(
      "# Chaos run\n\n{} trials (seed {}): a fault each on a fresh local cluster of 3 nodes with "
      "agents, under a write probe every 20 ms through the multi-host connection string and a "
      "writer per node; every third trial starved (busy loops on every core, SIGSTOP 300 ms / "
      "SIGCONT 100 ms bursts of the agents, their watchdogs and PostgreSQL from the fault for 2 s; "
      "an agent a fault froze stays frozen for the fault's whole 3 s). Stopped or "
      "crashed nodes are started again 2 s after the fault. Outage: the longest time without an "
      "acknowledged write from the fault until every node streams again (a write held through a "
      "freeze counts as a refused one).{}\n\nRun on {} with `{}`, from {}.\n\n",
      trials, seed,
      sync_count != 1
          ? fmt::format(" Synchronous trials with ha.synchronous_node_count {}: every commit "
                        "waits for both standbys, and either may take over.",
                        sync_count)
          : std::string(),
      describe_machine(), command, source);
  nlohmann::json json{{"trials", trials},
                      {"seed", seed},
                      {"machine", describe_machine()},
                      {"command", command},
                      {"source", source},
                      {"commit", commit_of(source)},
                      {"synchronous_node_count", sync_count},
                      {"faults", summary(results, markdown)}};
  std::filesystem::create_directories(out);
  std::ofstream(out + "/chaos.json") << json.dump(2) << "\n";
  std::ofstream(out + "/chaos.md") << markdown;
  fmt::print("\n{}", markdown);
  bool clean = true;
  for (const Trial& trial : results) {
    clean &= trial.split_brains.empty() && trial.failure.empty() && trial.timelines_distinct &&
             trial.extra_promotions == 0 && (!trial.synchronous || trial.lost.value_or(0) == 0);
  }
  return clean ? 0 : 1;
}
