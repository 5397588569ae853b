#include "core/timeline_claim.h"

#include <fmt/format.h>

namespace tandem {

std::optional<std::string> behind_claimed_timeline(const std::optional<TimelineClaim>& claim,
                                                   std::string_view node, TimelineId timeline) {
  if (!claim || timeline >= claim->timeline) return std::nullopt;
  if (claim->by == node && promoted_timeline(timeline) == claim->timeline) return std::nullopt;
  return fmt::format(
      "{} is on timeline {}, behind timeline {} claimed by {}: it may lack what {} wrote", node,
      timeline, claim->timeline, claim->by, claim->by);
}

}  // namespace tandem
