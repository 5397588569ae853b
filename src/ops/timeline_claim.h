// Claiming the timeline a promotion creates, in the cluster's store (see core/timeline_claim.h):
// the agent before every promotion, and `tandem promote`, which thereby also serialises two
// promotions started at once — the second finds the timeline claimed and is refused.
#pragma once

#include <string>

#include "core/timeline_claim.h"
#include "dcs/cluster_layout.h"
#include "dcs/store.h"

namespace tandem {

// Claims promoted_timeline(timeline) for `node` by compare-and-set against the newest claim.
// kConflict with the reason when the node is behind the newest claim or another node claimed
// that timeline first; kUnavailable when the store cannot be reached. Returns the claimed one.
// With `beyond_newer` (the operator allowed the data loss), a node behind the newest claim
// claims the timeline after it instead, and its promotion skips the numbers between.
Result<TimelineId> claim_timeline(Store& store, const ClusterLayout& layout,
                                  const std::string& node, TimelineId timeline,
                                  bool beyond_newer = false);

// Marks the newest claim promoted when core's claim_to_mark says so for `node` seen on
// `timeline`: by compare-and-set, so a newer claim written meanwhile is left as it is (it
// supersedes this one). kUnavailable when the store cannot be reached.
Status mark_claim_promoted(Store& store, const ClusterLayout& layout, const std::string& node,
                           TimelineId timeline);

}  // namespace tandem
