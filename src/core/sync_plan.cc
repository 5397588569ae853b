#include "core/sync_plan.h"

#include <fmt/format.h>

#include <algorithm>

namespace tandem {

void read_sync_record(SyncObservation& seen, const std::optional<std::string>& sync_standby,
                      const std::string& sync_leader, const std::string& self) {
  seen.foreign = sync_leader != self;
  seen.published = seen.foreign ? std::string() : sync_standby.value_or("");
}

namespace {

// Where a standby is, and since when it has stood there behind the primary or with commits
// waiting for it. The clock starts at the first sight of it so at this position: a standby that
// sat caught up through an idle minute is not stalled by the first commit after it (review).
SyncMemory::Progress progress_of(const SyncObservation& seen,
                                 const SyncObservation::Standby& standby, const SyncMemory& memory,
                                 std::chrono::steady_clock::time_point now) {
  auto known = memory.progress.find(standby.name);
  SyncMemory::Progress progress{standby.flush, std::nullopt};
  bool waited_for = seen.commits_waiting && standby.name == seen.configured;
  bool still = known != memory.progress.end() && known->second.flush == standby.flush &&
               known->second.behind_since;
  // Stalled, it stays so until its position moves: one stalled while commits waited for it
  // looks caught up once replaced, and was chosen again (review: two standbys whose replies
  // were lost took turns, holding every commit).
  bool was_stalled = still && now - *known->second.behind_since >= kSyncStallLimit;
  if (standby.flush < seen.current || waited_for || was_stalled) {
    progress.behind_since = still ? known->second.behind_since : now;
  }
  return progress;
}

}  // namespace

SyncStep plan_sync(const SyncObservation& seen, const SyncMemory& memory,
                   std::chrono::steady_clock::time_point now) {
  SyncStep step;
  step.memory.pending_since = memory.pending_since;
  std::vector<const SyncObservation::Standby*> usable;
  std::vector<std::string> stalled;
  for (const SyncObservation::Standby& standby : seen.streaming) {
    SyncMemory::Progress progress = progress_of(seen, standby, memory, now);
    step.memory.progress[standby.name] = progress;
    if (progress.behind_since && now - *progress.behind_since >= kSyncStallLimit) {
      stalled.push_back(standby.name);
    } else {
      usable.push_back(&standby);
    }
  }
  // The store may name only a standby that has every acknowledged commit: PostgreSQL waits for
  // the configured one alone, so a named standby that is not the configured one is unnamed
  // first (found by the simulation: a crashed synchronous standby, replaced in PostgreSQL but
  // still named in the store, came back and took over without the commits acknowledged since).
  step.unname = !seen.published.empty() || seen.foreign;
  auto configured = std::find_if(usable.begin(), usable.end(), [&](const auto* standby) {
    return !seen.configured.empty() && standby->name == seen.configured;
  });
  if (configured != usable.end()) {
    if (seen.published == seen.configured && !seen.foreign) {
      step.unname = false;
      return step;
    }
    if (!step.memory.pending_since) step.memory.pending_since = seen.current;
    if (!(*configured)->synchronous || (*configured)->flush < *step.memory.pending_since) {
      return step;
    }
    step.name = seen.configured;
    step.memory.pending_since.reset();
    step.why =
        fmt::format("{} is the synchronous standby: it alone may take over", seen.configured);
    return step;
  }
  // The configured standby is gone, stalled, or none was: first the store, then PostgreSQL;
  // from now on no standby may take over in this primary's place until the next one has caught
  // up.
  std::string reason;
  if (std::ranges::find(stalled, seen.configured) != stalled.end()) {
    auto found =
        std::ranges::find(seen.streaming, seen.configured, &SyncObservation::Standby::name);
    bool behind = found != seen.streaming.end() && found->flush < seen.current;
    reason = fmt::format("{} has {} nothing for {} ms while {}: ", seen.configured,
                         behind ? "flushed" : "acknowledged", kSyncStallLimit.count(),
                         behind ? "behind" : "commits wait for it");
  }
  const SyncObservation::Standby* best = nullptr;
  for (const auto* standby : usable) {
    if (best == nullptr || standby->flush > best->flush) best = standby;
  }
  step.memory.pending_since.reset();
  // Nobody to name: PostgreSQL waits for nobody, or in strict mode for any standby ("*").
  std::string none = seen.strict ? "*" : "";
  if (best != nullptr) {
    step.configure = best->name;
    step.why = fmt::format(
        "{}made {} synchronous; it is named in the store once it has every acknowledged commit",
        reason, best->name);
  } else if (seen.configured != none) {
    step.configure = none;
    step.why = reason + (seen.strict ? "no standby streams: commits wait until one does "
                                       "(synchronous_mode_strict)"
                                     : "no standby streams: writes go on without a synchronous "
                                       "standby, and no standby may take over without "
                                       "--allow-data-loss");
  }
  return step;
}

}  // namespace tandem
