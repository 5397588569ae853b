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

// The name of the WAL segment file of `timeline` that holds `position`, with segments of
// `segment_bytes` (initdb's default, 16 MB, unless told): "000000020000000000000007".
std::string wal_segment_name(TimelineId timeline, Lsn position,
                             std::uint64_t segment_bytes = 16ULL << 20);

// Before a standby is promoted: of the WAL segments it received whole (`received`, those its
// archive_status says .done), those after `archived` — the last file the old primary was seen
// to archive: a segment, or a .partial or .backup file of one; any other name (a .history file,
// "") stands for none — in the order of the WAL, where at one position a newer timeline comes
// after an older one (a promotion archives the old timeline's last segment as a .partial while
// the new one's at that position is still owed): what the old primary may have died before
// archiving. Of any timeline: a promoted node dead before its archiver pushed what it owed
// leaves that timeline's behind. Whatever a standby received is a true copy of its timeline.
std::vector<std::string> received_after(const std::vector<std::string>& received,
                                        std::string_view archived);

// The timeline of a WAL segment's file name ("000000020000000000000007": 2); nullopt for any
// other name (a .partial or .history file, a status file).
std::optional<TimelineId> segment_timeline(std::string_view name);
// The newest timeline with a history file among a pg_wal directory's file names; 1 for none.
TimelineId newest_history(const std::vector<std::string>& names);
// Whether `segment` is a WAL segment of a timeline that ended in `history` (a node's newest
// history): of a timeline the node left. Recovery along that history reads such a segment up to
// the switch point at most (the one holding it is read under the next timeline's name), WAL
// every node that followed the timeline holds alike; what lies after it there is WAL of the
// timeline left, or none.
bool of_a_timeline_left(std::string_view segment, const TimelineHistory& history);

}  // namespace tandem
