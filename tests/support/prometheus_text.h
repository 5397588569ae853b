// A strict parser of Prometheus' text exposition format (0.0.4), for tests: it fails on any line
// a Prometheus server would refuse, and checks the naming conventions tandem follows.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace tandem::testing {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Family {
  std::string name;
  std::string type;  // counter, gauge, histogram, summary, untyped
  std::string help;
};

struct Exposition {
  std::map<std::string, Family> families;
  std::vector<Sample> samples;

  // The value of the one sample with this name and these labels (all of them), if any.
  std::optional<double> value(const std::string& name,
                              const std::map<std::string, std::string>& labels = {}) const;
};

// Errors name the line number and what is wrong with it.
Result<Exposition> parse_prometheus_text(const std::string& text);

// Prometheus' conventions (https://prometheus.io/docs/practices/naming/): one prefix for the
// application, counters and only counters end in _total, base units (seconds, bytes) as a
// suffix, no unit in another scale (_ms, _kb, ...). Returns every violation.
std::vector<std::string> naming_violations(const Exposition& exposition, const std::string& prefix);

}  // namespace tandem::testing
