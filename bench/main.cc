// tandem-bench: how long writes stop and what is lost, measured on local clusters.
// Usage: tandem-bench [--tandem PATH] [--trials K] [--out DIR] [--smoke]
//                     [--idle-seconds S] [--sizes 100,1024] [--only NAME]
// --only runs the trials whose name starts with NAME ("backup", "host crash"): for a look at one
// scenario; its results go to --out like any others'. With TANDEM_BENCH_KEEP set, every
// cluster's directory (/tmp/tandem-bench-*) is kept after it is stopped, to read a failed trial's
// logs.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "bench/report.h"
#include "bench/scenarios.h"
#include "bench/starver.h"
#include "common/log.h"
#include "proc/detached.h"

namespace {

using namespace tandem;
using namespace tandem::bench;

struct Arguments {
  BenchOptions options;
  int trials = 5;
  std::string out = "bench/results";
  bool smoke = false;
  std::string only;           // run only the trials whose name starts so ("": all)
  bool tandem_given = false;  // --tandem: another build than the one beside the bench
};

std::string g_only;  // Arguments::only, for trial()

Result<Arguments> parse(int argc, char** argv) {
  Arguments arguments;
  const std::string default_binary =
      (std::filesystem::path(own_executable()).parent_path().parent_path() / "tandem").string();
  arguments.options.tandem_binary = default_binary;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (flag == "--tandem") {
      arguments.options.tandem_binary = next();
    } else if (flag == "--trials") {
      arguments.trials = std::max(1, std::atoi(next().c_str()));
    } else if (flag == "--out") {
      arguments.out = next();
    } else if (flag == "--only") {
      arguments.only = next();
    } else if (flag == "--smoke") {
      arguments.smoke = true;
    } else if (flag == "--idle-seconds") {
      arguments.options.idle_for = std::chrono::seconds(std::atoi(next().c_str()));
    } else if (flag == "--sizes") {
      arguments.options.sizes_mb.clear();
      std::string list = next();
      for (std::size_t start = 0; start < list.size();) {
        std::size_t comma = list.find(',', start);
        arguments.options.sizes_mb.push_back(std::atoi(list.substr(start, comma - start).c_str()));
        start = comma == std::string::npos ? list.size() : comma + 1;
      }
    } else {
      return fail(ErrorCode::kInvalidArgument, "unknown argument " + flag);
    }
  }
  bool out_given = false;
  for (int i = 1; i < argc; ++i) out_given |= std::string(argv[i]) == "--out";
  if (!arguments.only.empty() && !out_given) {
    // Part of a run is no `make bench`: never over the committed results.
    return fail(ErrorCode::kInvalidArgument, "--only needs --out DIR (not bench/results)");
  }
  arguments.options.tandem_binary =
      std::filesystem::absolute(arguments.options.tandem_binary).string();
  if (arguments.smoke) {
    // One short trial of everything, to keep the benchmark working in CI.
    arguments.trials = 1;
    arguments.options.idle_for = std::chrono::seconds(3);
    arguments.options.sizes_mb = {16};
  }
  // Another build than the one beside the bench (`make bench` names that one too).
  std::error_code error;
  arguments.tandem_given =
      !std::filesystem::equivalent(arguments.options.tandem_binary, default_binary, error);
  return arguments;
}

// "postmaster crash: writes stopped (s)" -> "postmaster crash, under load: writes stopped (s)";
// a name without a colon gets it before its unit.
std::string under_load(std::string name) {
  std::size_t at = name.find(':');
  if (at == std::string::npos) at = name.rfind(" (");
  if (at == std::string::npos) at = name.size();
  name.insert(at, ", under load");
  return name;
}

template <typename Run>
void trial(const std::string& what, Run run, std::vector<Sample>& samples, int& failures) {
  if (!what.starts_with(g_only)) return;
  fmt::print("  {} ... ", what);
  std::fflush(stdout);
  auto result = run();
  if (!result) {
    fmt::print("FAILED: {}\n", result.error().message);
    ++failures;
    return;
  }
  for (const Sample& sample : *result) {
    fmt::print(
        "{}: {:.3f}{} ", sample.scenario, sample.seconds,
        sample.lost ? fmt::format(" ({} of {} lost)", *sample.lost, sample.acknowledged) : "");
    samples.push_back(sample);
  }
  fmt::print("\n");
}

}  // namespace

int main(int argc, char** argv) {
  init_logging(false);
  auto arguments = parse(argc, argv);
  // The code measured is the code built now: its commit read before the trials, not after.
  if (!arguments) {
    fmt::print(stderr, "tandem-bench: {}\n", arguments.error().message);
    return 2;
  }
  std::string source = describe_source(arguments->options.tandem_binary);
  const BenchOptions& options = arguments->options;
  g_only = arguments->only;
  std::vector<Sample> samples;
  FailoverTimeline timeline;
  int failures = 0;
  for (int k = 1; k <= arguments->trials; ++k) {
    fmt::print("trial {} of {}\n", k, arguments->trials);
    trial(
        "host crash", [&] { return host_crash(options, false, k == 1 ? &timeline : nullptr); },
        samples, failures);
    trial(
        "host crash, synchronous", [&] { return host_crash(options, true, nullptr); }, samples,
        failures);
    trial(
        "postmaster crash", [&] { return postmaster_crash(options); }, samples, failures);
    trial(
        "switchover", [&] { return switchover(options); }, samples, failures);
  }
  // Under load (issue 19.7): a busy loop on every core for the whole trial, the cluster's
  // setup included; the samples' names say ", under load".
  for (int k = 1; k <= arguments->trials; ++k) {
    auto loaded = [&](auto scenario) {
      return [&, scenario]() -> Result<std::vector<Sample>> {
        BusyLoops load;
        auto result = scenario();
        if (result) {
          for (Sample& sample : *result) sample.scenario = under_load(sample.scenario);
        }
        return result;
      };
    };
    trial("host crash, under load", loaded([&] { return host_crash(options, false, nullptr); }),
          samples, failures);
    trial("postmaster crash, under load", loaded([&] { return postmaster_crash(options); }),
          samples, failures);
    trial("switchover, under load", loaded([&] { return switchover(options); }), samples, failures);
  }
  trial(
      "idle agents", [&] { return idle_agents(options); }, samples, failures);
  // Scale (issue 19.5): a primary and eight standbys; the agents ping nobody on one machine, but
  // every one reads every member's record each cycle.
  for (int k = 1; k <= arguments->trials; ++k) {
    trial(
        "host crash, 9 nodes", [&] { return host_crash(options, false, nullptr, 8); }, samples,
        failures);
  }
  trial(
      "idle agents, 9 nodes", [&] { return idle_agents(options, 8); }, samples, failures);
  // As many trials as the failovers (issue 19.9), each on a cluster of its own, its pairs in
  // turn; then backups and restores with pgBackRest (issue 18): what tandem's wrapper costs.
  for (int k = 1; k <= arguments->trials; ++k) {
    fmt::print("sizes: trial {} of {}\n", k, arguments->trials);
    for (int size : options.sizes_mb) {
      trial(
          fmt::format("clone {} MB", size), [&] { return clone_time(options, size); }, samples,
          failures);
      trial(
          fmt::format("rejoin {} MB", size), [&] { return rejoin_time(options, size); }, samples,
          failures);
      trial(
          fmt::format("backup and restore {} MB", size),
          [&] { return backup_restore_time(options, size); }, samples, failures);
      trial(
          fmt::format("backup: a lost slot caught up from the archive, {} MB", size),
          [&] { return archive_catch_up_time(options, size); }, samples, failures);
    }
  }
  std::vector<Summary> summaries = summarize(samples);
  std::string machine = describe_machine();
  std::string command = arguments->smoke ? "make bench-smoke"
                        : arguments->only.empty()
                            ? "make bench"
                            : fmt::format("tandem-bench --only \"{}\"", arguments->only);
  if (arguments->tandem_given) command += " --tandem " + arguments->options.tandem_binary;
  std::filesystem::create_directories(arguments->out);
  std::ofstream(arguments->out + "/latest.json") << to_json(summaries, machine, command, source);
  std::string markdown = to_markdown(summaries, machine, command, source);
  std::ofstream(arguments->out + "/latest.md") << markdown;
  if (!timeline.attempts.empty()) {
    std::ofstream(arguments->out + "/failover.svg") << failover_svg(timeline);
  }
  fmt::print("\n{}\nwritten to {}/latest.json, latest.md, failover.svg\n", markdown,
             arguments->out);
  return failures == 0 ? 0 : 1;
}
