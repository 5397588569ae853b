#include "core/sync_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace tandem {

void read_sync_record(SyncObservation& seen, const std::optional<SyncNames>& sync_standbys,
                      const std::string& sync_leader, const std::string& self,
                      std::optional<int> sync_quorum) {
  seen.foreign = sync_leader != self;
  seen.published = seen.foreign ? SyncNames() : sync_standbys.value_or(SyncNames());
  seen.published_quorum = seen.foreign ? std::nullopt : sync_quorum;
}

std::string join_names(const SyncNames& names) {
  std::string joined;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) joined += i + 1 == names.size() ? " and " : ", ";
    joined += names[i];
  }
  return joined;
}

namespace {

bool contains(const SyncNames& names, const std::string& name) {
  return std::ranges::find(names, name) != names.end();
}

// The standby of that name among those streaming, or nullptr.
const SyncObservation::Standby* streaming_standby(const SyncObservation& seen,
                                                  const std::string& name) {
  auto found = std::ranges::find(seen.streaming, name, &SyncObservation::Standby::name);
  return found != seen.streaming.end() ? &*found : nullptr;
}

bool same_set(const SyncNames& a, const SyncNames& b) {
  return std::set<std::string>(a.begin(), a.end()) == std::set<std::string>(b.begin(), b.end());
}

// Where a standby is, and since when it has stood there behind the primary or with commits
// waiting for it. The clock starts at the first sight of it so at this position: a standby that
// sat caught up through an idle minute is not stalled by the first commit after it (review).
SyncMemory::Progress progress_of(const SyncObservation& seen,
                                 const SyncObservation::Standby& standby, bool waited_for,
                                 const SyncMemory& memory,
                                 std::chrono::steady_clock::time_point now) {
  auto known = memory.progress.find(standby.name);
  SyncMemory::Progress progress{standby.flush, std::nullopt};
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

struct Sorted {
  std::vector<const SyncObservation::Standby*> usable;
  SyncNames stalled;
};

// Commits that wait while every configured standby has flushed them wait for replies that do
// not come: each configured one is suspect. While one of them is behind, that one is.
Sorted sort_standbys(const SyncObservation& seen, const SyncMemory& memory, SyncStep& step,
                     std::chrono::steady_clock::time_point now) {
  bool one_behind = std::ranges::any_of(seen.streaming, [&](const auto& standby) {
    return contains(seen.configured, standby.name) && standby.flush < seen.current;
  });
  Sorted sorted;
  for (const SyncObservation::Standby& standby : seen.streaming) {
    bool waited_for =
        seen.commits_waiting && !one_behind && contains(seen.configured, standby.name);
    SyncMemory::Progress progress = progress_of(seen, standby, waited_for, memory, now);
    step.memory.progress[standby.name] = progress;
    if (progress.behind_since && now - *progress.behind_since >= kSyncStallLimit) {
      sorted.stalled.push_back(standby.name);
    } else {
      sorted.usable.push_back(&standby);
    }
  }
  return sorted;
}

// The standbys PostgreSQL should wait for: the configured ones that still may, then the most
// advanced of the others, up to the count.
SyncNames choose(const SyncObservation& seen, const Sorted& sorted) {
  SyncNames chosen;
  auto count = static_cast<std::size_t>(std::max(seen.count, 1));
  for (const std::string& name : seen.configured) {
    bool usable = std::ranges::any_of(sorted.usable, [&](auto* s) { return s->name == name; });
    if (usable && chosen.size() < count) chosen.push_back(name);
  }
  std::vector<const SyncObservation::Standby*> others;
  for (const auto* standby : sorted.usable) {
    if (!contains(chosen, standby->name)) others.push_back(standby);
  }
  std::ranges::stable_sort(others, [](auto* a, auto* b) { return a->flush > b->flush; });
  for (const auto* standby : others) {
    if (chosen.size() < count) chosen.push_back(standby->name);
  }
  return chosen;
}

std::string stall_reason(const SyncObservation& seen, const Sorted& sorted) {
  std::string reason;
  for (const std::string& name : seen.configured) {
    if (!contains(sorted.stalled, name)) continue;
    const SyncObservation::Standby* found = streaming_standby(seen, name);
    bool behind = found != nullptr && found->flush < seen.current;
    reason += fmt::format("{} has {} nothing for {} ms while {}: ", name,
                          behind ? "flushed" : "acknowledged", kSyncStallLimit.count(),
                          behind ? "behind" : "commits wait for it");
  }
  return reason;
}

// The log's word for a configuration that names no standby.
std::string nobody_streams(bool strict) {
  return strict ? "no standby streams: commits wait until one does (synchronous_mode_strict)"
                : "no standby streams: writes go on without a synchronous standby, and no "
                  "standby may take over without --allow-data-loss";
}

// PostgreSQL is to wait for `chosen` instead of what it waits for now.
void reconfigure(const SyncObservation& seen, const Sorted& sorted, const SyncNames& chosen,
                 SyncStep& step) {
  // Nobody to name: PostgreSQL waits for nobody, or in strict mode for any standby ("*").
  SyncNames none = seen.strict ? SyncNames{"*"} : SyncNames{};
  SyncNames wanted = chosen.empty() ? none : chosen;
  if (wanted == seen.configured) return;
  step.configure = wanted;
  // A new configuration, a new starting point for those not named yet.
  step.memory.pending_since.clear();
  std::string reason = stall_reason(seen, sorted);
  SyncNames added;
  for (const std::string& name : chosen) {
    if (!contains(seen.configured, name)) added.push_back(name);
  }
  if (!added.empty()) {
    step.why = fmt::format(
        "{}made {} synchronous; {} named in the store once {} every acknowledged commit", reason,
        join_names(added), added.size() == 1 ? "it is" : "they are",
        added.size() == 1 ? "it has" : "each has");
  } else if (!chosen.empty()) {
    step.why = fmt::format("{}commits wait for {} only", reason, join_names(chosen));
  } else {
    step.why = reason + nobody_streams(seen.strict);
  }
}

}  // namespace

SyncStep plan_sync(const SyncObservation& seen, const SyncMemory& memory,
                   std::chrono::steady_clock::time_point now) {
  if (seen.quorum) return plan_quorum_sync(seen, memory, now);
  if (seen.published_quorum || seen.configured_any > 0) {
    // Quorum commit turned off: a quorum record says less than this form reads into it (not
    // every member has each commit), and under ANY k PostgreSQL waited for fewer than the list.
    // The record is rewritten naming nobody, and the list taken for one that names anybody.
    SyncObservation plain = seen;
    plain.foreign = true;
    plain.published.clear();
    plain.published_quorum.reset();
    if (plain.configured_any > 0) plain.configured = SyncNames{"*"};
    plain.configured_any = 0;
    return plan_sync(plain, memory, now);
  }
  SyncStep step;
  Sorted sorted = sort_standbys(seen, memory, step, now);
  SyncNames chosen = choose(seen, sorted);
  // The store may name only a standby that has every acknowledged commit: PostgreSQL waits for
  // the configured ones alone, so a named standby that is not configured, or is to be dropped,
  // leaves the record first (found by the simulation: a crashed synchronous standby, replaced in
  // PostgreSQL but still named in the store, came back and took over without the commits
  // acknowledged since). One PostgreSQL reports as not synchronous leaves it too, whatever this
  // leader believes it configured (review: a reload that failed after tandem.conf was written).
  // Across a change of the list, only the members of the part both lists begin with stay: each
  // WAL sender takes a reload on its own, ranking the standbys by priorities some of which may
  // still be the old list's, and only there does none rank before a member that stays (review).
  SyncNames kept;
  std::size_t common = 0;
  while (common < seen.configured.size() && common < chosen.size() &&
         seen.configured[common] == chosen[common]) {
    ++common;
  }
  for (std::size_t i = 0; i < common; ++i) {
    const SyncObservation::Standby* standby = streaming_standby(seen, chosen[i]);
    if (contains(seen.published, chosen[i]) && standby != nullptr && standby->synchronous) {
      kept.push_back(chosen[i]);
    }
  }
  if (seen.foreign || !same_set(kept, seen.published)) step.narrow = kept;
  reconfigure(seen, sorted, chosen, step);
  if (step.configure) return step;  // named from the next cycle on, once they have caught up
  // PostgreSQL waits for `chosen`: each is named once it has flushed past where the WAL ended
  // when it was first seen so configured.
  SyncNames named;
  for (const std::string& name : chosen) {
    if (contains(kept, name)) {
      named.push_back(name);
      continue;
    }
    auto pending = memory.pending_since.find(name);
    Lsn since = pending != memory.pending_since.end() ? pending->second : seen.current;
    const SyncObservation::Standby* standby = streaming_standby(seen, name);
    if (standby->synchronous && standby->flush >= since) {
      named.push_back(name);
    } else {
      step.memory.pending_since[name] = since;
    }
  }
  if (!same_set(named, kept)) {
    step.name = named;
    step.why = named.size() == 1
                   ? fmt::format("{} is the synchronous standby: it alone may take over", named[0])
                   : fmt::format("{} are the synchronous standbys: only they may take over",
                                 join_names(named));
  }
  return step;
}

bool quorum_implies(int k, const SyncNames& names, int k2, const SyncNames& names2) {
  if (k2 <= 0) return true;
  int outside = 0;
  for (const std::string& name : names) outside += contains(names2, name) ? 0 : 1;
  return k - outside >= k2;
}

namespace {

SyncNames united(const SyncNames& a, const SyncNames& b) {
  SyncNames all = a;
  for (const std::string& name : b) {
    if (!contains(all, name)) all.push_back(name);
  }
  return all;
}

// How many of `names` every commit waits for under a configuration: ANY k, or each of a list
// (FIRST n of n, tandem's priority form), or one for "*" (which may be any standby at all).
int waited_for(const SyncNames& names, int any) {
  return any > 0 ? any : static_cast<int>(names.size());
}

// A record that both the published one (k, S) and the configurations `mix` (kc, Sc) imply:
// every standby either names (a superset with the same k is weaker: S is kept whole), k lowered
// by each entry of Sc it cannot name ("*", which may be any standby). {0, {}} when none is left.
std::pair<int, SyncNames> narrowed(const SyncObservation& seen, int k, int kc,
                                   const SyncNames& sc) {
  SyncNames names;
  for (const std::string& name : united(seen.published, sc)) {
    if (name != "*") names.push_back(name);
  }
  int quorum = std::min(k, kc - static_cast<int>(std::ranges::count(sc, "*")));
  if (quorum <= 0) return {0, {}};
  return {quorum, names};
}

std::string quorum_text(int k, const SyncNames& names) {
  return fmt::format("any {} of {}", k, join_names(names));
}

// The log's line for a record (k, S) now in the store.
std::string recorded(int k, const SyncNames& names) {
  auto size = static_cast<int>(names.size());
  return k == size ? fmt::format(
                         "every acknowledged commit is on each of {}: any of them may "
                         "take over",
                         join_names(names))
                   : fmt::format(
                         "every acknowledged commit is on {}: a takeover needs {} of "
                         "them frozen",
                         quorum_text(k, names), size - k + 1);
}

}  // namespace

SyncStep plan_quorum_sync(const SyncObservation& seen, const SyncMemory& memory,
                          std::chrono::steady_clock::time_point now) {
  SyncStep step;
  Sorted sorted = sort_standbys(seen, memory, step, now);
  SyncNames chosen;
  for (const auto* standby : sorted.usable) chosen.push_back(standby->name);
  std::ranges::sort(chosen);
  int count = std::min(std::max(seen.count, 1), static_cast<int>(chosen.size()));
  SyncNames wanted = chosen.empty() && seen.strict ? SyncNames{"*"} : chosen;
  int wanted_any = chosen.empty() ? 0 : count;
  bool change = wanted != seen.configured || wanted_any != seen.configured_any;
  int kc = waited_for(seen.configured, seen.configured_any);
  // Across the reload, a WAL sender may count the smaller number over both lists.
  int k_mix = change ? std::min(kc, waited_for(wanted, wanted_any)) : kc;
  SyncNames mix = change ? united(seen.configured, wanted) : seen.configured;
  int k = seen.published_quorum.value_or(static_cast<int>(seen.published.size()));
  SyncNames kept = seen.published;
  int kept_k = k;
  if (seen.foreign || !quorum_implies(k_mix, mix, k, seen.published)) {
    std::tie(kept_k, kept) = narrowed(seen, k, k_mix, mix);
  }
  // A member's freeze is answered by a newer revision of the record: written again.
  if (seen.foreign || kept != seen.published || kept_k != k || seen.member_frozen) {
    step.narrow = kept;
    step.narrow_quorum = kept_k;
  }
  // A record this cycle changes to (k', S') is logged like a naming (CI: a narrowing was silent).
  bool narrowed_now =
      step.narrow && !kept.empty() && (!same_set(kept, seen.published) || kept_k != k);
  if (change) {
    step.configure = wanted;
    step.configure_any = wanted_any;
    step.memory.quorum_since.reset();
    std::string reason = stall_reason(seen, sorted);
    step.why = chosen.empty() ? reason + nobody_streams(seen.strict)
               : narrowed_now ? fmt::format("{}commits wait for {}; {}", reason,
                                            quorum_text(wanted_any, wanted), recorded(kept_k, kept))
                              : fmt::format(
                                    "{}commits wait for {}; named in the store once {} of them "
                                    "have every acknowledged commit",
                                    reason, quorum_text(wanted_any, wanted), wanted_any);
    return step;
  }
  // PostgreSQL waits for any kc of Sc: the record says so once kc of them have flushed past
  // where the WAL ended when every one of them was seen in the quorum.
  if (seen.configured.empty() || contains(seen.configured, "*")) return step;
  if (same_set(kept, seen.configured) && kept_k == kc) {
    if (narrowed_now) step.why = recorded(kept_k, kept);
    return step;
  }
  bool implied = quorum_implies(kept_k, kept, kc, seen.configured);
  bool all_in = std::ranges::all_of(seen.configured, [&](const std::string& name) {
    const SyncObservation::Standby* standby = streaming_standby(seen, name);
    return standby != nullptr && standby->synchronous;
  });
  if (!implied && !all_in) return step;
  Lsn since = memory.quorum_since.value_or(seen.current);
  int past = 0;
  for (const std::string& name : seen.configured) {
    const SyncObservation::Standby* standby = streaming_standby(seen, name);
    if (standby != nullptr && standby->synchronous && standby->flush >= since) ++past;
  }
  if (!implied && past < kc) {
    step.memory.quorum_since = since;
    return step;
  }
  step.name = seen.configured;
  step.name_quorum = kc;
  step.why = recorded(kc, seen.configured);
  return step;
}

}  // namespace tandem
