#include "prometheus_text.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <regex>
#include <set>
#include <sstream>

namespace tandem::testing {
namespace {

const std::regex kMetricName("[a-zA-Z_:][a-zA-Z0-9_:]*");
const std::regex kLabelName("[a-zA-Z_][a-zA-Z0-9_]*");

Error line_error(int line, const std::string& what) {
  return {ErrorCode::kInvalidArgument, fmt::format("line {}: {}", line, what)};
}

// Parses `{a="x",b="y"}` starting at text[pos] == '{'; leaves pos after '}'.
bool parse_labels(const std::string& text, std::size_t& pos,
                  std::map<std::string, std::string>& labels, std::string& why) {
  ++pos;
  while (pos < text.size() && text[pos] != '}') {
    std::size_t equals = text.find('=', pos);
    if (equals == std::string::npos) {
      why = "a label without '='";
      return false;
    }
    std::string name = text.substr(pos, equals - pos);
    if (!std::regex_match(name, kLabelName) || name.starts_with("__")) {
      why = "bad label name '" + name + "'";
      return false;
    }
    pos = equals + 1;
    if (pos >= text.size() || text[pos] != '"') {
      why = "label value not quoted";
      return false;
    }
    std::string value;
    for (++pos; pos < text.size() && text[pos] != '"'; ++pos) {
      if (text[pos] == '\\') {
        if (++pos >= text.size()) break;
        char escaped = text[pos];
        if (escaped == 'n') {
          value += '\n';
        } else if (escaped == '\\' || escaped == '"') {
          value += escaped;
        } else {
          why = "bad escape in a label value";
          return false;
        }
      } else {
        value += text[pos];
      }
    }
    if (pos >= text.size()) {
      why = "unterminated label value";
      return false;
    }
    ++pos;  // the closing quote
    if (!labels.emplace(name, value).second) {
      why = "label '" + name + "' twice";
      return false;
    }
    if (pos < text.size() && text[pos] == ',') ++pos;
  }
  if (pos >= text.size()) {
    why = "unterminated label set";
    return false;
  }
  ++pos;  // '}'
  return true;
}

std::optional<double> parse_value(const std::string& text) {
  if (text == "+Inf") return INFINITY;
  if (text == "-Inf") return -INFINITY;
  if (text == "NaN") return NAN;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::optional<double> Exposition::value(const std::string& name,
                                        const std::map<std::string, std::string>& labels) const {
  for (const Sample& sample : samples) {
    if (sample.name == name && sample.labels == labels) return sample.value;
  }
  return std::nullopt;
}

Result<Exposition> parse_prometheus_text(const std::string& text) {
  Exposition exposition;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  std::set<std::string> seen_series;
  if (!text.empty() && text.back() != '\n') {
    return std::unexpected(line_error(0, "the exposition must end with a newline"));
  }
  while (std::getline(lines, line)) {
    ++number;
    if (line.empty()) continue;
    if (line.starts_with("#")) {
      std::istringstream words(line.substr(1));
      std::string keyword, name;
      words >> keyword >> name;
      if (keyword != "HELP" && keyword != "TYPE") continue;  // a plain comment
      if (!std::regex_match(name, kMetricName)) {
        return std::unexpected(line_error(number, "bad metric name '" + name + "'"));
      }
      std::string rest;
      std::getline(words >> std::ws, rest);
      Family& family = exposition.families[name];
      family.name = name;
      if (keyword == "TYPE") {
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                     "untyped"};
        if (!kTypes.contains(rest)) {
          return std::unexpected(line_error(number, "unknown type '" + rest + "'"));
        }
        if (!family.type.empty()) return std::unexpected(line_error(number, "second TYPE"));
        for (const Sample& sample : exposition.samples) {
          if (sample.name == name) {
            return std::unexpected(line_error(number, "TYPE after samples of " + name));
          }
        }
        family.type = rest;
      } else {
        family.help = rest;
      }
      continue;
    }
    Sample sample;
    std::size_t pos = 0;
    while (pos < line.size() && line[pos] != '{' && line[pos] != ' ') ++pos;
    sample.name = line.substr(0, pos);
    if (!std::regex_match(sample.name, kMetricName)) {
      return std::unexpected(line_error(number, "bad metric name '" + sample.name + "'"));
    }
    if (pos < line.size() && line[pos] == '{') {
      std::string why;
      if (!parse_labels(line, pos, sample.labels, why)) {
        return std::unexpected(line_error(number, why));
      }
    }
    if (pos >= line.size() || line[pos] != ' ') {
      return std::unexpected(line_error(number, "no value"));
    }
    std::istringstream rest(line.substr(pos + 1));
    std::string value_text, timestamp, extra;
    rest >> value_text >> timestamp >> extra;
    auto value = parse_value(value_text);
    if (!value) return std::unexpected(line_error(number, "bad value '" + value_text + "'"));
    if (!timestamp.empty() && timestamp.find_first_not_of("-0123456789") != std::string::npos) {
      return std::unexpected(line_error(number, "bad timestamp '" + timestamp + "'"));
    }
    if (!extra.empty()) return std::unexpected(line_error(number, "text after the timestamp"));
    sample.value = *value;
    std::string series = sample.name;
    for (const auto& [key, label] : sample.labels) series += "," + key + "=" + label;
    if (!seen_series.insert(series).second) {
      return std::unexpected(line_error(number, "the same series twice: " + series));
    }
    exposition.samples.push_back(std::move(sample));
  }
  return exposition;
}

std::vector<std::string> naming_violations(const Exposition& exposition,
                                           const std::string& prefix) {
  std::vector<std::string> violations;
  static const std::vector<std::string> kOtherScales = {"_ms", "_milliseconds", "_us",  "_kb",
                                                        "_mb", "_kib",          "_mib", "_minutes"};
  for (const auto& [name, family] : exposition.families) {
    if (!name.starts_with(prefix)) violations.push_back(name + ": no " + prefix + " prefix");
    if (family.type.empty()) violations.push_back(name + ": no TYPE");
    if (family.help.empty()) violations.push_back(name + ": no HELP");
    bool total = name.ends_with("_total");
    if (family.type == "counter" && !total) violations.push_back(name + ": counter without _total");
    if (family.type != "counter" && total)
      violations.push_back(name + ": _total on a " + family.type);
    for (const std::string& scale : kOtherScales) {
      if (name.find(scale) != std::string::npos) {
        violations.push_back(name + ": not in base units (" + scale + ")");
      }
    }
    for (const char* quantity : {"lag", "retained", "position", "remaining"}) {
      bool unit = name.ends_with("_bytes") || name.ends_with("_seconds");
      if (name.find(quantity) != std::string::npos && !unit) {
        violations.push_back(name + ": a quantity without its unit (_bytes, _seconds)");
      }
    }
  }
  for (const Sample& sample : exposition.samples) {
    if (!exposition.families.contains(sample.name)) {
      violations.push_back(sample.name + ": a sample without HELP and TYPE");
    }
  }
  return violations;
}

}  // namespace tandem::testing
