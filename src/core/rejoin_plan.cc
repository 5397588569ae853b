#include "core/rejoin_plan.h"

#include <fmt/format.h>

namespace tandem {

RejoinPlan plan_rejoin(const WalPosition& node, const TimelineHistory& primary_history,
                       Lsn primary_end) {
  if (node.timeline == primary_history.current()) {
    if (node.last_record < primary_end) {
      return {RejoinMethod::kFollow, std::nullopt,
              fmt::format(
                  "same timeline {} and its last WAL record at {} is before the primary's end {}",
                  node.timeline, node.last_record.str(), primary_end.str())};
    }
    return {RejoinMethod::kRefuse, std::nullopt,
            fmt::format("on the primary's timeline {} it has a WAL record at {}, not before the "
                        "primary's end {}: "
                        "it holds data the primary lacks",
                        node.timeline, node.last_record.str(), primary_end.str())};
  }
  std::optional<Lsn> switch_point = primary_history.switch_point(node.timeline);
  if (!switch_point) {
    // Not an ancestor of the primary's timeline: they parted where the node's own timeline began
    // or earlier. pg_rewind finds the exact point from both histories.
    return {RejoinMethod::kRewind, std::nullopt,
            fmt::format("its timeline {} is not in the history of the primary's timeline {}",
                        node.timeline, primary_history.current())};
  }
  if (node.last_record < *switch_point) {
    return {
        RejoinMethod::kFollow, std::nullopt,
        fmt::format(
            "its last WAL record on timeline {} is at {}, before the primary switched away at {}",
            node.timeline, node.last_record.str(), switch_point->str())};
  }
  return {RejoinMethod::kRewind, switch_point,
          fmt::format("its WAL on timeline {} has a record at {}, at or past the primary's switch "
                      "to timeline {} "
                      "at {}: diverged",
                      node.timeline, node.last_record.str(), primary_history.current(),
                      switch_point->str())};
}

}  // namespace tandem
