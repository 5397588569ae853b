#include "bench/report.h"

#include <fmt/format.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "proc/process_runner.h"

namespace tandem::bench {
namespace {

// The targets of issue 5. The other tools are measured in the same run by `make bench-compare`
// (compare.md), never quoted here from another run.
const std::map<std::string, std::string>& targets() {
  static const std::map<std::string, std::string> table = {
      {"host crash, asynchronous: writes stopped (s)", "<= 1.5 s median"},
      {"host crash, synchronous: writes stopped (s)", "0 acknowledged writes lost"},
      {"postmaster crash: writes stopped (s)", "<= 1 s"},
      {"switchover: write gap (s)", "<= 0.5 s, 0 lost"},
      {"old primary streaming after its agent starts (s)", "<= 1 s"},
      {"agent RSS, idle (MiB)", "<= 6 MiB"},
      {"agent PSS, idle (MiB)", "<= 5 MiB"},
      {"agent private memory, idle (MiB)", "<= 3 MiB"},
      {"agent CPU, idle (% of a core)", "<= 0.1 %"},
      {"host crash, asynchronous, 9 nodes: writes stopped (s)", "<= 1.5 s median"},
      {"agent CPU, idle, 9 nodes (% of a core)", "<= 2 x the 3-node figure"},
      // Issue 19.7: with a busy loop on every core.
      {"postmaster crash, under load: writes stopped (s)", "<= 1 s"},
      {"switchover, under load: write gap (s)", "<= 0.3 s"},
  };
  return table;
}

std::string target_of(const std::string& scenario) {
  auto it = targets().find(scenario);
  if (it != targets().end()) return it->second;
  // Issue 18: pgBackRest's wrapper costs at most 5 %.
  if ((scenario.starts_with("backup ") || scenario.starts_with("restore ")) &&
      scenario.find("tandem / bare") != std::string::npos) {
    return "<= 1.05";
  }
  if (scenario.find("tandem / bare") != std::string::npos) return "<= 1.1";
  // Issue 19.6: pg_rewind copies what changed, so it stays flat while a reclone grows.
  if (scenario.find("rewind / reclone") != std::string::npos) return "<= 0.3 at 8 GB";
  return "";
}

std::string number(double value) { return fmt::format("{:.3f}", value); }

}  // namespace

std::vector<Summary> summarize(const std::vector<Sample>& samples) {
  std::vector<Summary> summaries;
  for (const Sample& sample : samples) {
    auto it = std::find_if(summaries.begin(), summaries.end(),
                           [&](const Summary& s) { return s.scenario == sample.scenario; });
    if (it == summaries.end()) {
      summaries.push_back({sample.scenario});
      it = summaries.end() - 1;
    }
    it->values.push_back(sample.seconds);
    if (sample.lost) {
      it->lost.push_back(*sample.lost);
      it->acknowledged.push_back(sample.acknowledged);
    }
  }
  for (Summary& summary : summaries) {
    std::vector<double> sorted = summary.values;
    std::sort(sorted.begin(), sorted.end());
    std::size_t n = sorted.size();
    summary.median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    summary.min = sorted.front();
    summary.max = sorted.back();
  }
  return summaries;
}

std::string describe_machine() {
  std::string cpu = "unknown CPU";
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);) {
    if (line.starts_with("model name")) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  utsname name{};
  uname(&name);
  long memory_gib = sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGE_SIZE) >> 30;
  return fmt::format("{} cores ({}), {} GiB, Linux {}", sysconf(_SC_NPROCESSORS_ONLN), cpu,
                     memory_gib, name.release);
}

std::string commit_of(const std::string& source) {
  if (!source.starts_with("commit ")) return "";
  std::string rest = source.substr(7);
  return rest.substr(0, rest.find(' '));
}

namespace {

// "commit <sha>", with the count of uncommitted changes to tracked files if any, of the git
// checkout at `dir`; nullopt outside one.
std::optional<std::string> checkout_commit(const std::string& dir) {
  SystemProcessRunner runner;
  auto head = runner.run({.program = "/usr/bin/git", .args = {"-C", dir, "rev-parse", "HEAD"}});
  if (!head || head->exit_code != 0) return std::nullopt;
  std::string commit = head->output.substr(0, head->output.find('\n'));
  // The source's changes, not the results': a run writes its log into bench/results as it goes.
  auto status = runner.run({.program = "/usr/bin/git",
                            .args = {"-C", dir, "status", "--porcelain", "--untracked-files=no",
                                     "--", ".", ":(exclude)bench/results"}});
  long changed = 0;
  if (status && status->exit_code == 0) {
    for (char c : status->output) changed += c == '\n' ? 1 : 0;
  }
  return changed == 0 ? fmt::format("commit {}", commit)
                      : fmt::format("commit {} plus {} uncommitted changes", commit, changed);
}

// The top of the git checkout that holds `path`, if any.
std::optional<std::string> checkout_of(const std::filesystem::path& path) {
  SystemProcessRunner runner;
  auto top =
      runner.run({.program = "/usr/bin/git",
                  .args = {"-C", path.parent_path().string(), "rev-parse", "--show-toplevel"}});
  if (!top || top->exit_code != 0) return std::nullopt;
  return top->output.substr(0, top->output.find('\n'));
}

}  // namespace

std::string describe_source(const std::string& tandem_binary) {
  std::string bench = checkout_commit(TANDEM_SOURCE_DIR).value_or("an unknown commit");
  if (tandem_binary.empty()) return bench;
  std::filesystem::path binary = std::filesystem::absolute(tandem_binary);
  auto top = checkout_of(binary);
  std::error_code error;
  if (top && std::filesystem::equivalent(*top, TANDEM_SOURCE_DIR, error)) return bench;
  // Another build measured (an older commit's, to compare): its own checkout names it first.
  std::string measured =
      top ? checkout_commit(*top).value_or("an unknown commit") : "an unknown commit";
  return fmt::format("{} (tandem at {}); the bench from {}", measured, binary.string(), bench);
}

std::string to_json(const std::vector<Summary>& summaries, const std::string& machine,
                    const std::string& command, const std::string& source) {
  nlohmann::json scenarios = nlohmann::json::array();
  for (const Summary& summary : summaries) {
    scenarios.push_back({{"scenario", summary.scenario},
                         {"trials", summary.values.size()},
                         {"median", summary.median},
                         {"min", summary.min},
                         {"max", summary.max},
                         {"values", summary.values},
                         {"lost_writes", summary.lost},
                         {"acknowledged_writes", summary.acknowledged},
                         {"target", target_of(summary.scenario)}});
  }
  return nlohmann::json{{"machine", machine},
                        {"command", command},
                        {"source", source},
                        {"commit", commit_of(source)},
                        {"scenarios", scenarios}}
             .dump(2) +
         "\n";
}

std::string to_markdown(const std::vector<Summary>& summaries, const std::string& machine,
                        const std::string& command, const std::string& source) {
  std::string table = fmt::format(
      "Measured on {} with `{}`, from {}. The other tools, measured in the same run with "
      "the same probe: compare.md (`make bench-compare`).\n\n"
      "| scenario | median | min | max | trials | acknowledged writes lost | target |\n"
      "|---|---|---|---|---|---|---|\n",
      machine, command, source);
  for (const Summary& summary : summaries) {
    std::string lost = "-";
    if (!summary.lost.empty()) {
      long total = 0, acknowledged = 0;
      for (long each : summary.lost) total += each;
      for (long each : summary.acknowledged) acknowledged += each;
      lost = fmt::format("{} of {}", total, acknowledged);
    }
    table += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", summary.scenario,
                         number(summary.median), number(summary.min), number(summary.max),
                         summary.values.size(), lost, target_of(summary.scenario));
  }
  return table;
}

std::string failover_svg(const FailoverTimeline& timeline) {
  using std::chrono::milliseconds;
  auto start = timeline.killed_at - milliseconds(1000);
  auto end = std::max(timeline.first_new_write_at, timeline.promoted_at) + milliseconds(1000);
  long bins =
      std::max<long>(1, std::chrono::duration_cast<milliseconds>(end - start).count() / 100);
  std::vector<int> acknowledged(bins, 0);
  for (const WriteAttempt& attempt : timeline.attempts) {
    long bin = std::chrono::duration_cast<milliseconds>(attempt.at - start).count() / 100;
    if (attempt.acknowledged && bin >= 0 && bin < bins) ++acknowledged[bin];
  }
  const int width = 800, height = 300, left = 50, bottom = 250, top = 40;
  double bar = static_cast<double>(width - left - 20) / bins;
  int peak = std::max(1, *std::max_element(acknowledged.begin(), acknowledged.end()));
  auto x_of = [&](std::chrono::system_clock::time_point at) {
    return left + bar * std::chrono::duration<double>(at - start).count() * 10.0;
  };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"20\" font-size=\"14\">One host crash: acknowledged writes per 100 ms "
      "(probe every 20 ms)</text>\n",
      width, height, left);
  for (long bin = 0; bin < bins; ++bin) {
    double h = static_cast<double>(bottom - top) * acknowledged[bin] / peak;
    svg += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"#4c78a8\"/>\n",
        left + bar * bin, bottom - h, std::max(1.0, bar - 1), h);
  }
  svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", left,
                     bottom, width - 20, bottom);
  for (long second = 0; second * 10 <= bins; ++second) {
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\">{}s</text>\n", left + bar * second * 10 - 5,
                       bottom + 15, second - 1);
  }
  struct Marker {
    std::chrono::system_clock::time_point at;
    const char* color;
    const char* label;
  };
  int row = 0;
  for (const Marker& marker :
       {Marker{timeline.killed_at, "#d62728", "kill"},
        Marker{timeline.promoted_at, "#2ca02c", "promotion"},
        Marker{timeline.first_new_write_at, "#9467bd", "first write on the new primary"}}) {
    double x = x_of(marker.at);
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"{3}\" "
        "stroke-width=\"2\"/>\n<text x=\"{4:.1f}\" y=\"{5}\" fill=\"{3}\">{6}</text>\n",
        x, top - 5, bottom, marker.color, x + 4, top + 12 + 14 * row++, marker.label);
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\">time from 1 s before the kill</text>\n</svg>\n", left,
                     bottom + 35);
  return svg;
}

}  // namespace tandem::bench
