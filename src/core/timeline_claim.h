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
// after it (a promotion of its own that did not complete). A node behind the newest claim lacks
// what a newer primary may have written, and its promotion would fork an older history.
std::optional<std::string> behind_claimed_timeline(const std::optional<TimelineClaim>& claim,
                                                   std::string_view node, TimelineId timeline);

// The timeline a promotion of a node on `timeline` creates.
inline TimelineId promoted_timeline(TimelineId timeline) { return timeline + 1; }

}  // namespace tandem
