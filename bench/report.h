// The benchmark's outputs: a JSON file, a Markdown table, and an SVG chart of one failover.
#pragma once

#include <string>
#include <vector>

#include "bench/scenarios.h"

namespace tandem::bench {

struct Summary {
  std::string scenario;
  std::vector<double> values;
  std::vector<long> lost;          // per trial, where counted
  std::vector<long> acknowledged;  // per trial, alongside lost
  double median = 0, min = 0, max = 0;
};

std::vector<Summary> summarize(const std::vector<Sample>& samples);

// What this machine is, for the reader of the figures.
std::string describe_machine();
// Which code the figures come from: "commit <sha>", with the count of uncommitted changes to
// tracked files if any, read with git from the source directory the runner was built from; or,
// when `tandem_binary` lies in another checkout (an older commit's build), that checkout's
// commit first, the bench's after it ("an unknown commit" outside any checkout).
std::string describe_source(const std::string& tandem_binary = "");
// The commit's hash alone, from what describe_source() said ("" when it named none): the
// results' "commit" field.
std::string commit_of(const std::string& source);

std::string to_json(const std::vector<Summary>& summaries, const std::string& machine,
                    const std::string& command, const std::string& source);
std::string to_markdown(const std::vector<Summary>& summaries, const std::string& machine,
                        const std::string& command, const std::string& source);
std::string failover_svg(const FailoverTimeline& timeline);

}  // namespace tandem::bench
