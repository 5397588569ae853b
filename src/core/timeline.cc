#include "core/timeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace tandem {
namespace {

std::string_view next_field(std::string_view& line) {
  std::size_t start = line.find_first_not_of(" \t");
  if (start == std::string_view::npos) {
    line = {};
    return {};
  }
  line.remove_prefix(start);
  std::size_t end = line.find_first_of(" \t");
  std::string_view field = line.substr(0, end);
  line.remove_prefix(end == std::string_view::npos ? line.size() : end);
  return field;
}

}  // namespace

Result<TimelineHistory> TimelineHistory::parse(TimelineId current, std::string_view text) {
  std::vector<TimelineSwitch> switches;
  std::size_t line_number = 0;
  while (!text.empty()) {
    std::size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    ++line_number;

    std::string_view rest = line;
    std::string_view tli_text = next_field(rest);
    if (tli_text.empty() || tli_text.front() == '#') continue;
    auto bad = [&](std::string_view why) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("timeline history line {} '{}': {}", line_number, line, why));
    };
    TimelineId timeline = 0;
    auto [end, ec] = std::from_chars(tli_text.data(), tli_text.data() + tli_text.size(), timeline);
    if (ec != std::errc() || end != tli_text.data() + tli_text.size() || timeline == 0) {
      return bad("the timeline is not a positive number");
    }
    auto lsn = Lsn::parse(next_field(rest));
    if (!lsn) return bad(lsn.error().message);
    if (timeline >= current) return bad(fmt::format("timeline is not below {}", current));
    // PostgreSQL requires only the timelines to increase and accepts a lower later switch
    // point: every file it accepts must parse here, or a rejoin retries for ever.
    if (!switches.empty() && timeline <= switches.back().timeline) {
      return bad("timelines are out of order");
    }
    std::size_t reason_start = rest.find_first_not_of(" \t");
    std::string reason(reason_start == std::string_view::npos ? "" : rest.substr(reason_start));
    switches.push_back({timeline, *lsn, std::move(reason)});
  }
  return TimelineHistory(current, std::move(switches));
}

bool TimelineHistory::contains(TimelineId timeline) const {
  return timeline == current_ || switch_point(timeline).has_value();
}

std::optional<Lsn> TimelineHistory::switch_point(TimelineId timeline) const {
  for (const TimelineSwitch& entry : switches_) {
    if (entry.timeline == timeline) return entry.switch_point;
  }
  return std::nullopt;
}

std::string history_file_name(TimelineId timeline) {
  return fmt::format("{:08X}.history", timeline);
}

namespace {

// PostgreSQL's WAL file names: upper-case hexadecimal digits.
bool hex_field(std::string_view text, std::uint64_t& out) {
  auto digit = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  if (text.empty() || !std::ranges::all_of(text, digit)) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  return error == std::errc() && end == text.data() + text.size();
}

struct SegmentName {
  std::uint64_t timeline = 0;
  std::uint64_t log = 0;
  std::uint64_t segment = 0;
};

std::optional<SegmentName> parse_segment_name(std::string_view name) {
  SegmentName parsed;
  if (name.size() != 24 || !hex_field(name.substr(0, 8), parsed.timeline) ||
      !hex_field(name.substr(8, 8), parsed.log) || !hex_field(name.substr(16, 8), parsed.segment)) {
    return std::nullopt;
  }
  return parsed;
}

}  // namespace

std::string wal_segment_name(TimelineId timeline, Lsn position, std::uint64_t segment_bytes) {
  std::uint64_t per_log = 0x100000000ULL / segment_bytes;
  std::uint64_t segment = position.value() / segment_bytes;
  return fmt::format("{:08X}{:08X}{:08X}", timeline, segment / per_log, segment % per_log);
}

std::optional<TimelineId> segment_timeline(std::string_view name) {
  auto parsed = parse_segment_name(name);
  if (!parsed || parsed->timeline == 0) return std::nullopt;
  return static_cast<TimelineId>(parsed->timeline);
}

TimelineId newest_history(const std::vector<std::string>& names) {
  TimelineId newest = 1;
  for (std::string_view name : names) {
    std::uint64_t timeline = 0;
    if (name.size() == 16 && name.ends_with(".history") && hex_field(name.substr(0, 8), timeline)) {
      newest = std::max<TimelineId>(newest, static_cast<TimelineId>(timeline));
    }
  }
  return newest;
}

bool of_a_timeline_left(std::string_view segment, const TimelineHistory& history) {
  auto timeline = segment_timeline(segment);
  return timeline && *timeline != history.current() && history.switch_point(*timeline);
}

std::vector<std::string> received_after(const std::vector<std::string>& received,
                                        std::string_view archived) {
  // Ordered by position in the WAL (the name's last 16 digits), whatever the timeline: the old
  // primary's archiver goes in that order, and a .partial or .backup file names its segment
  // in its first 24 characters. At one position a newer timeline comes after: a promotion
  // archives the old timeline's last segment as a .partial, and the new timeline's segment at
  // that position is still owed (CI on ce3e701: timeline 2's first segment missing from the
  // archive after its primary crashed, a restore to the latest point 575 writes short).
  auto position = [](std::string_view name) { return name.substr(8, 16); };
  auto after = [&](std::string_view name, std::string_view than) {
    if (position(name) != position(than)) return position(name) > position(than);
    return name.substr(0, 8) > than.substr(0, 8);
  };
  std::string_view last = archived.size() >= 24 && segment_timeline(archived.substr(0, 24))
                              ? archived.substr(0, 24)
                              : std::string_view();
  std::vector<std::string> owed;
  for (const std::string& name : received) {
    if (segment_timeline(name) && (last.empty() || after(name, last))) {
      owed.push_back(name);
    }
  }
  std::ranges::sort(owed, {}, position);
  return owed;
}

}  // namespace tandem
