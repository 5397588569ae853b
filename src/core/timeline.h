// Timeline history: the content of a PostgreSQL NNNNNNNN.history file, which says for each
// ancestor timeline at which WAL position the cluster switched away from it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "core/lsn.h"

namespace tandem {

using TimelineId = std::uint32_t;

struct TimelineSwitch {
  TimelineId timeline;  // the ancestor timeline that ended
  Lsn switch_point;     // the first position that belongs to the next timeline
  std::string reason;
};

class TimelineHistory {
 public:
  // An empty history: timeline 1, which has no ancestors.
  TimelineHistory() = default;
  TimelineHistory(TimelineId current, std::vector<TimelineSwitch> switches)
      : current_(current), switches_(std::move(switches)) {}

  // Parses the file for timeline `current`. Blank lines and '#' comments are skipped; entries
  // must have increasing timelines below `current` and non-decreasing switch points.
  static Result<TimelineHistory> parse(TimelineId current, std::string_view text);

  TimelineId current() const { return current_; }
  const std::vector<TimelineSwitch>& switches() const { return switches_; }

  // True when `timeline` is the current one or one of its ancestors.
  bool contains(TimelineId timeline) const;
  // Where `timeline` ended in this history; nullopt for the current timeline or a stranger.
  std::optional<Lsn> switch_point(TimelineId timeline) const;

 private:
  TimelineId current_ = 1;
  std::vector<TimelineSwitch> switches_;
};

// The history file name PostgreSQL uses for a timeline: "00000002.history".
std::string history_file_name(TimelineId timeline);

}  // namespace tandem
