#include "core/timeline_claim.h"

#include <fmt/format.h>

namespace tandem {

std::optional<std::string> behind_claimed_timeline(const std::optional<TimelineClaim>& claim,
                                                   std::string_view node, TimelineId timeline) {
  if (!claim || timeline >= claim->timeline) return std::nullopt;
  if (claim->by == node && !claim->promoted && promoted_timeline(timeline) == claim->timeline) {
    return std::nullopt;
  }
  return fmt::format(
      "{} is on timeline {}, behind timeline {} claimed by {}: it may lack what {} wrote", node,
      timeline, claim->timeline, claim->by, claim->by);
}

bool claim_to_mark(const std::optional<TimelineClaim>& claim, std::string_view node,
                   TimelineId timeline) {
  return claim && claim->by == node && !claim->promoted && timeline != 0 &&
         timeline == claim->timeline;
}

bool claim_abandoned(const ClusterView& view) {
  if (!view.timeline_claim || view.leader) return false;
  const TimelineClaim& claim = *view.timeline_claim;
  auto claimant = view.members.find(claim.by);
  if (claimant == view.members.end()) return true;
  // Alive and a standby below its claim: its promotion did not happen, and without the lease it
  // will not (or, the claim marked promoted, it did and the node has lost that history since). A
  // stopped claimant may be the last primary, fenced by a store outage, that takes its lease back
  // and restarts in place: its claim still holds.
  const MemberRecord& record = claimant->second;
  return record.state == PgState::kStandby && record.timeline < claim.timeline;
}

}  // namespace tandem
