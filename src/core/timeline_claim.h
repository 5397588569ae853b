// Timeline claims: before it promotes, a node claims the timeline its promotion creates, by
// compare-and-set against the newest claimed one, so that no timeline number is ever used by two
// different histories in a cluster (which makes pg_rewind and followers go wrong).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/cluster_view.h"

namespace tandem {

// Why `node`, on `timeline`, may not promote, or nullopt when it may. It may when its timeline
// is at least the newest claimed one, or when the newest claim is its own for the timeline right
// after it and not marked promoted (a promotion of its own that did not complete). A node behind
// the newest claim lacks what a newer primary may have written, and its promotion would fork an
// older history. Its own claim, marked, is no exception: the node promoted onto it and has
// since lost that history (a reinitialization or a rewind onto a copy from a node that never
// promoted); promoting again onto the same number would give it two histories (fresh seed
// 273562385).
std::optional<std::string> behind_claimed_timeline(const std::optional<TimelineClaim>& claim,
                                                   std::string_view node, TimelineId timeline);

// Whether the newest claim was left by a node that is gone without leading: nobody holds the
// lease, and its claimant's member record has expired (its agent is dead or cut off for a TTL)
// or shows it running as a standby, below the timeline it claimed. Such
// a claim no longer holds the others back (issue 16.7: a switchover's target whose host died
// for good blocked every promotion until an operator forced one): a node behind it may take
// over as after any failure — asynchronous mode loses what the claimant alone may have
// written; in synchronous mode the claimant named itself alone in `sync` first, so nobody else
// qualifies — and claims the timeline after it.
bool claim_abandoned(const ClusterView& view);

// Whether `node`, seen on `timeline` (0: not read), should mark the newest claim promoted: the
// claim is its own, unmarked, and its server runs on the claimed timeline.
bool claim_to_mark(const std::optional<TimelineClaim>& claim, std::string_view node,
                   TimelineId timeline);

// The timeline a promotion of a node on `timeline` creates.
inline TimelineId promoted_timeline(TimelineId timeline) { return timeline + 1; }

}  // namespace tandem
