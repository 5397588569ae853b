#include "core/timeline.h"

#include <fmt/format.h>

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

}  // namespace tandem
