#include "ops/timeline_claim.h"

#include <fmt/format.h>

namespace tandem {

Result<TimelineId> claim_timeline(Store& store, const ClusterLayout& layout,
                                  const std::string& node, TimelineId timeline, bool beyond_newer) {
  // A claim written by another node between the read and the write is read again: it may make
  // this node's timeline the old one.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto snapshot = store.read(layout.timeline());
    if (!snapshot) return fail_with_context(snapshot.error(), "reading the claimed timeline");
    std::optional<TimelineClaim> claim = layout.view(*snapshot).timeline_claim;
    TimelineId wanted = promoted_timeline(timeline);
    if (beyond_newer && claim && claim->by == node && !claim->promoted &&
        claim->timeline > wanted) {
      wanted = claim->timeline;  // its own, from an attempt that did not complete: kept
    } else if (auto why = behind_claimed_timeline(claim, node, timeline)) {
      if (!beyond_newer) return fail(ErrorCode::kConflict, "not promoting: " + *why);
      wanted = promoted_timeline(claim->timeline);
    }
    std::string value = encode_timeline_claim(wanted, node);
    auto written =
        claim ? store.compare_and_set(layout.timeline(), value, claim->revision, std::nullopt)
              : store.create(layout.timeline(), value, std::nullopt);
    if (written) return wanted;
    if (written.error().code != ErrorCode::kConflict) {
      return fail_with_context(written.error(), fmt::format("claiming timeline {}", wanted));
    }
  }
  return fail(ErrorCode::kConflict,
              fmt::format("not promoting {}: the claimed timeline keeps changing", node));
}

Status mark_claim_promoted(Store& store, const ClusterLayout& layout, const std::string& node,
                           TimelineId timeline) {
  auto snapshot = store.read(layout.timeline());
  if (!snapshot) return fail_with_context(snapshot.error(), "reading the claimed timeline");
  std::optional<TimelineClaim> claim = layout.view(*snapshot).timeline_claim;
  if (!claim_to_mark(claim, node, timeline)) return {};
  auto written =
      store.compare_and_set(layout.timeline(), encode_timeline_claim(claim->timeline, node, true),
                            claim->revision, std::nullopt);
  if (written || written.error().code == ErrorCode::kConflict) return {};
  return fail_with_context(written.error(),
                           fmt::format("marking timeline {} promoted", claim->timeline));
}

}  // namespace tandem
