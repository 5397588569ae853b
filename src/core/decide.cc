#include "core/decide.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/sync_plan.h"
#include "core/timeline_claim.h"

namespace tandem {
namespace {

// Quorum commit: the promise this node last published (MemberRecord::frozen_for).
std::optional<std::int64_t> own_promise(const ClusterView& view, const std::string& self) {
  auto found = view.members.find(self);
  return found != view.members.end() ? found->second.frozen_for : std::nullopt;
}

// A frozen standby may stream from the leader again: the lease holder wrote `sync` after this
// node's last promise. Before, the old leader's acknowledgements could still count on it.
bool thawed(const ClusterView& view, const std::string& self) {
  auto promise = own_promise(view, self);
  return view.leader && view.sync_leader == view.leader->name && promise &&
         view.sync_revision > *promise;
}

// A standby that promised to stay frozen and is not thawed yet: it streams from nobody.
bool holds_freeze(const ClusterView& view, const HaConfig& config) {
  return config.synchronous_quorum && own_promise(view, config.self) && !thawed(view, config.self);
}

Decision frozen(const ClusterView& view, const HaConfig& config, const std::string& leader) {
  return {Action::kNone,
          fmt::format("frozen for sync revision {} (quorum commit): streams from {} again once "
                      "it writes the sync record anew",
                      *own_promise(view, config.self), leader),
          leader};
}

// A standby the quorum record names, still pointed somewhere, freezes before any election.
bool must_freeze(const ClusterView& view, const NodeObservation& node, const HaConfig& config) {
  return config.synchronous_quorum && view.sync_quorum && view.sync_names(config.self) &&
         !node.upstream.empty();
}

Decision freeze(const ClusterView& view, const std::string& why) {
  return {Action::kFollow,
          fmt::format("{}: stop the WAL receiver (freeze) so that no primary counts on this node "
                      "for any {} of {} any more, before an election",
                      why, *view.sync_quorum, join_names(*view.sync_standbys)),
          ""};
}

using std::chrono::milliseconds;
using TimePoint = std::chrono::steady_clock::time_point;

long ms(milliseconds duration) { return static_cast<long>(duration.count()); }

// How long since this agent last wrote the lease; nullopt if it never did.
std::optional<milliseconds> since_renewal(const NodeObservation& node, TimePoint now) {
  if (!node.lease_renewed_at) return std::nullopt;
  return std::chrono::duration_cast<milliseconds>(now - *node.lease_renewed_at);
}

// A primary must stop writing before its lease can expire anywhere: once renew_deadline has
// passed since its last renewal, it fences, whatever else is true.
std::optional<Decision> fence_if_late(const NodeObservation& node, const HaConfig& config,
                                      TimePoint now, std::string_view why) {
  auto elapsed = since_renewal(node, now);
  if (elapsed && *elapsed < config.renew_deadline) return std::nullopt;
  return Decision{Action::kFence,
                  elapsed ? fmt::format("{}; lease last renewed {} ms ago, deadline {} ms: stop "
                                        "writes before it can expire",
                                        why, ms(*elapsed), ms(config.renew_deadline))
                          : fmt::format("{}; this agent never held the lease: stop writes", why)};
}

// Quorum fencing: a primary writes while a majority of the agents answer it...
bool reaches_majority(const NodeObservation& node, const HaConfig& config) {
  return node.majority_contact_age < config.renew_deadline;
}

// ...or while it renewed its lease in the store within renew_deadline: a standby takes over
// only once both have failed (a standby's host cut off must not stop a two-node cluster).
bool lease_fresh(const NodeObservation& node, const HaConfig& config, TimePoint now) {
  auto elapsed = since_renewal(node, now);
  return elapsed && *elapsed < config.renew_deadline;
}

bool may_write(const NodeObservation& node, const HaConfig& config, TimePoint now) {
  return reaches_majority(node, config) || lease_fresh(node, config, now);
}

std::string renewal_age(const NodeObservation& node, TimePoint now) {
  auto elapsed = since_renewal(node, now);
  return elapsed ? fmt::format("lease last renewed {} ms ago", ms(*elapsed))
                 : std::string("lease never renewed by this agent");
}

Decision fence_without_majority(const NodeObservation& node, const HaConfig& config, TimePoint now,
                                std::string_view why) {
  return {Action::kFence,
          fmt::format("{}no answer from a majority of the agents for {} ms and {} (deadline {} "
                      "ms): stop writes; a standby may take over",
                      why, ms(node.majority_contact_age), renewal_age(node, now),
                      ms(config.renew_deadline))};
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) {
    text += text.empty() ? "" : ", ";
    text += name;
  }
  return text;
}

Decision without_store(const NodeObservation& node, const HaConfig& config, TimePoint now) {
  if (node.state == PgState::kPrimary && config.quorum_fencing) {
    if (!may_write(node, config, now)) {
      return fence_without_majority(node, config, now, "the store is unreachable, ");
    }
    if (reaches_majority(node, config)) {
      return {Action::kNone,
              "the store is unreachable, but a majority of the agents answer: keep accepting "
              "writes (nobody can take over without them)"};
    }
    return {Action::kNone,
            fmt::format("the store is unreachable and no majority answers; {}, fencing at {} ms",
                        renewal_age(node, now), ms(config.renew_deadline))};
  }
  if (node.state == PgState::kPrimary) {
    if (auto fence = fence_if_late(node, config, now, "the store is unreachable")) return *fence;
    return {Action::kNone,
            fmt::format("the store is unreachable; lease renewed {} ms ago, fencing at {} ms",
                        ms(*since_renewal(node, now)), ms(config.renew_deadline))};
  }
  return {Action::kNone, "the store is unreachable: changing nothing"};
}

Decision without_data(const ClusterView& view, const HaConfig& config) {
  if (!view.initialized) {
    return {Action::kBootstrap, "the cluster is not initialised: bootstrap it"};
  }
  if (view.leader && view.leader->name != config.self) {
    return {Action::kClone, fmt::format("no data directory: clone {}", view.leader->name),
            view.leader->name};
  }
  // This node won the initialize key but its bootstrap ended before the first primary led (the
  // store timed out on a write it then applied, say): no timeline claimed, no position ever
  // published by a primary, no member with data — it bootstraps again.
  if (view.initialized_by == config.self && !view.leader && !view.timeline_claim &&
      !view.last_leader_lsn && std::ranges::all_of(view.members, [](const auto& member) {
        return member.second.state == PgState::kNoData;
      })) {
    return {Action::kBootstrap,
            "this node won the initialize key, but its bootstrap did not finish and nobody has "
            "data: bootstrap again"};
  }
  return {Action::kNone,
          fmt::format("no data directory and no leader to clone from (initialised by {})",
                      view.initialized_by)};
}

bool leader_runs_as_primary(const ClusterView& view) {
  if (!view.leader) return false;
  auto member = view.members.find(view.leader->name);
  return member != view.members.end() && member->second.state == PgState::kPrimary;
}

// A rejoin, or once rejoins have failed again and again a fresh copy (the old data kept aside),
// but only of a leader that runs as a primary: rejoins fail too while the leader has not
// promoted yet, and a copy of it then would replace this node's data — the WAL the leader waits
// for, acknowledged commits under quorum commit — with a standby's that lacks it (multi-host
// seed 910011382: a switchover's target that could not start held the lease, the old primary
// and the standby that had the last commits were copied from it, and a node without them took
// over).
Decision rejoin(const ClusterView& view, const NodeObservation& node, const std::string& why,
                const std::string& leader) {
  bool escalates = should_escalate(node.rejoin_failures, node.rejoin_failing_for);
  bool primary = leader_runs_as_primary(view);
  if (escalates && primary) {
    return {Action::kReclone,
            fmt::format("{}, and {} rejoins in a row failed over {} s: clone {} again (the old "
                        "data directory is moved aside)",
                        why, node.rejoin_failures, ms(node.rejoin_failing_for) / 1000, leader),
            leader};
  }
  Decision decision{Action::kRejoin, why + ": rejoin it", leader};
  if (escalates) {
    decision.reason = fmt::format(
        "{}: rejoin it ({} rejoins in a row failed, but {} does not run as a primary: no copy of "
        "it replaces this node's data)",
        why, node.rejoin_failures, leader);
  }
  decision.uncounted_rejoin = !primary;
  return decision;
}

// The leader's PostgreSQL is down: restarted in place (crash recovery, same timeline). In
// synchronous mode, with the standby its own `sync` record names, or with none once a record
// another leader wrote is unnamed.
Decision restart_in_place(const ClusterView& view, const HaConfig& config) {
  Decision decision{Action::kStartPrimary,
                    "holds the lease and PostgreSQL is down: restart it in place (crash recovery, "
                    "same timeline)"};
  if (!config.synchronous_mode) return decision;
  if (view.sync_leader != config.self) {
    // Another leader's record, or none, even one naming nobody: rewritten as this node's own
    // (review: a former leader's record left by synchronous mode turned off and on again).
    std::string named = view.sync_standbys ? join_names(*view.sync_standbys) : "";
    decision.unname_sync = true;
    decision.reason += fmt::format(
        ", the sync record rewritten as its own ({}): only this node has every acknowledged "
        "commit",
        view.sync_leader.empty() ? std::string("there was none")
                                 : fmt::format("{} wrote it, naming {}", view.sync_leader,
                                               named.empty() ? std::string("nobody") : named));
  } else if (view.sync_names_any()) {
    decision.keep_sync_standbys = *view.sync_standbys;
    decision.reason +=
        fmt::format(", waiting for {} as its record says", join_names(*view.sync_standbys));
  }
  return decision;
}

Decision stopped(const ClusterView& view, const NodeObservation& node, const HaConfig& config,
                 TimePoint now) {
  // The adopted primary's agent: its lease (written by adopt, without a TTL) nobody else can take
  // while the mark stands, so it is this node's to prove by the compare-and-set that starts it
  // (start_primary) — a lone survivor of two would otherwise stay down for ever, its lease never
  // lapsing (fresh seed 80000018691).
  if (view.leader_is(config.self) && config.quorum_fencing && !may_write(node, config, now) &&
      view.adopting != config.self) {
    return {Action::kNone,
            fmt::format("holds the lease, but no majority of the agents answered for {} ms and {}: "
                        "stay down",
                        ms(node.majority_contact_age), renewal_age(node, now))};
  }
  if (view.leader_is(config.self) && node.timeline != 0) {  // 0: not read this time
    if (auto why = behind_claimed_timeline(view.timeline_claim, config.self, node.timeline)) {
      // A newer primary was promoted meanwhile (while this agent waited for the store, say):
      // restarting in place would fork an older history.
      return {Action::kReleaseLease, fmt::format("holds the lease, but {}: release it", *why)};
    }
  }
  if (view.leader_is(config.self) && should_escalate(node.start_failures, node.start_failing_for)) {
    return {Action::kReleaseLease,
            fmt::format("PostgreSQL did not come back after {} restarts in place over {} s: "
                        "release the lease so that a standby takes over (this node rejoins it)",
                        node.start_failures, ms(node.start_failing_for) / 1000)};
  }
  if (view.leader_is(config.self) && !node.data_was_primary) {
    // Its data is still a standby's: the lease came by a hand-over or a take-over and the
    // promotion did not finish (PostgreSQL died first, or this agent restarted). Restarted as a
    // primary it would write on the old timeline with no promotion on record; it starts as a
    // standby, and the next cycle promotes it onto the claimed timeline.
    return {Action::kStartStandby,
            "holds the lease, but its data is still a standby's (the promotion did not finish): "
            "start it as a standby, then promote"};
  }
  if (view.leader_is(config.self)) return restart_in_place(view, config);
  if (view.leader) {
    if (node.data_was_primary) {
      return rejoin(view, node, fmt::format("a former primary while {} leads", view.leader->name),
                    view.leader->name);
    }
    if (holds_freeze(view, config)) {
      return {Action::kStartStandby,
              fmt::format("PostgreSQL is down: start it as a standby of nobody, frozen for sync "
                          "revision {} (quorum commit) until {} writes the record anew",
                          *own_promise(view, config.self), view.leader->name)};
    }
    return {Action::kStartStandby,
            fmt::format("PostgreSQL is down: start it as a standby of {}", view.leader->name),
            view.leader->name};
  }
  // The last node to promote, stopped (fenced while the store was out of reach or slow, say):
  // nobody has promoted since — the claimed timeline is still its own — so it has everything,
  // and it takes the lease back and restarts in place instead of making a needless failover.
  // Without quorum fencing only: with it, the agents' word decides who may write.
  if (node.data_was_primary && !config.quorum_fencing && view.timeline_claim &&
      view.timeline_claim->by == config.self && node.timeline == view.timeline_claim->timeline &&
      !config.nofailover) {
    return {Action::kAcquireLease,
            fmt::format("PostgreSQL is down and nobody leads, but nobody promoted since this node "
                        "did (timeline {}): take the lease back and restart in place",
                        node.timeline)};
  }
  return {Action::kStartStandby,
          "PostgreSQL is down and nobody leads: start it read-only and join the election"};
}

// The leader's agent says it runs as a primary: what a standby pointed at it could stream.
// The standby a requested switchover hands the lease to: the one asked for, else the best.
Decision switchover_target(const ClusterView& view, const HaConfig& config) {
  const SwitchoverRequest& request = *view.switchover;
  std::vector<std::string> candidates = failover_candidates(view, config, /*planned=*/true);
  std::erase(candidates, config.self);
  std::string target = request.to;
  if (target.empty()) {
    if (candidates.empty()) {
      return {Action::kRenewLease, "a switchover was requested but no standby is eligible"};
    }
    target = candidates.front();
  } else if (auto why = request_refusal(view, request, config)) {
    // A failover is forced past a leader too, but only the operator's --allow-data-loss hands
    // the lease to a node that may lack acknowledged commits (the simulation, seed 2033: a
    // failover to a node that was not the synchronous standby, and 3 commits lost).
    return {Action::kRenewLease,
            fmt::format("a {} to {} was requested but it is not eligible: {}",
                        request.force ? "failover" : "switchover", target, *why)};
  }
  return {.action = Action::kHandOver,
          .reason = fmt::format("a switchover was requested: stop cleanly and hand the lease to {}",
                                target),
          .target = target};
}

Decision running_primary(const ClusterView& view, const NodeObservation& node,
                         const HaConfig& config, TimePoint now) {
  auto behind = node.timeline == 0
                    ? std::nullopt
                    : behind_claimed_timeline(view.timeline_claim, config.self, node.timeline);
  if (behind) {
    const std::string* why = &*behind;
    // A newer primary was promoted: whatever the lease says, this one must not write on.
    return {Action::kFence, fmt::format("runs as primary, but {}: stop at once", *why)};
  }
  if (config.quorum_fencing && !may_write(node, config, now) &&
      (!view.leader || view.leader_is(config.self))) {
    return fence_without_majority(node, config, now, "");
  }
  if (view.leader_is(config.self) && config.quorum_fencing) {
    // A failed renewal alone does not fence this primary while a majority answers it (see
    // above), nor a silent majority while it renews. Renew when it can.
    if (view.switchover && view.switchover->from == config.self) {
      return switchover_target(view, config);
    }
    return {Action::kRenewLease,
            reaches_majority(node, config)
                ? "the primary holds the lease and reaches a majority: renew it"
                : fmt::format("the primary holds the lease; no majority of the agents answered for "
                              "{} ms, so the lease alone keeps it writing: renew it",
                              ms(node.majority_contact_age))};
  }
  if (view.leader_is(config.self)) {
    // The store answered: a compare-and-set now proves (or disproves) the lease, however long
    // the last cycle took. The executor fences if that renewal fails past the deadline.
    auto elapsed = since_renewal(node, now);
    if (elapsed && *elapsed >= config.renew_deadline) {
      return {Action::kRenewLease,
              fmt::format("lease last renewed {} ms ago, past the {} ms deadline: renew it now "
                          "or fence",
                          ms(*elapsed), ms(config.renew_deadline))};
    }
    if (view.switchover && view.switchover->from == config.self) {
      return switchover_target(view, config);
    }
    return {Action::kRenewLease, "the primary holds the lease: renew it"};
  }
  if (view.leader) {
    return {
        Action::kDemote,
        fmt::format("runs as primary while {} holds the lease: stop at once", view.leader->name),
        view.leader->name};
  }
  if (config.quorum_fencing) {
    if (!reaches_majority(node, config)) {
      return fence_without_majority(node, config, now, "the lease is gone from the store and ");
    }
    return {Action::kAcquireLease,
            "the lease lapsed while this primary kept a majority of the agents: retake it"};
  }
  if (auto fence = fence_if_late(node, config, now, "the lease lapsed")) return *fence;
  return {Action::kAcquireLease, "the lease lapsed but was renewed in time: retake it"};
}

// Quorum commit: a hand-over needs no freeze, for the old primary stopped cleanly and passed
// its WAL to the standbys that streamed — but the target may not have streamed then (found by
// the simulation: a target cut off before the hand-over promoted without the commits the other
// standby had acknowledged). It promotes once it has received up to the old primary's shutdown
// checkpoint (published before the hand-over), and lets the lease go if it cannot.
std::optional<Decision> quorum_hand_over_wait(const ClusterView& view, const NodeObservation& node,
                                              const HaConfig& config) {
  if (!config.synchronous_quorum || !view.sync_quorum || !view.last_leader_lsn) {
    return std::nullopt;
  }
  if (node.received_lsn && *node.received_lsn >= *view.last_leader_lsn) return std::nullopt;
  std::string where = node.received_lsn ? node.received_lsn->str() : std::string("nothing");
  if (node.not_streaming_for >= config.rejoin_after) {
    return Decision{Action::kReleaseLease,
                    fmt::format("{} handed over the lease, but this node received {}, short of its "
                                "shutdown checkpoint {}, and streams from nobody: release it",
                                view.switchover->from, where, view.last_leader_lsn->str())};
  }
  return Decision{Action::kNone,
                  fmt::format("{} handed over the lease: waits to receive up to its shutdown "
                              "checkpoint {} before promoting (has {})",
                              view.switchover->from, view.last_leader_lsn->str(), where)};
}

// Under the quorum record (k of S), a member of S has every acknowledged commit once |S| - k
// others are frozen for this very record and it has received what each of them had: any k of S
// meet those |S| - k + 1.
std::optional<std::string> quorum_shortfall(const ClusterView& view, const MemberRecord& member) {
  const std::vector<std::string>& named = *view.sync_standbys;
  int needed = static_cast<int>(named.size()) - *view.sync_quorum;
  std::vector<std::string> frozen;
  for (const std::string& name : named) {
    auto other = view.members.find(name);
    if (name == member.name || other == view.members.end() ||
        other->second.frozen_for != view.sync_revision || !other->second.frozen_at) {
      continue;
    }
    if (member.received_lsn && *other->second.frozen_at > *member.received_lsn) {
      return fmt::format("{} ({}) is behind {}, frozen at {}", member.name,
                         member.received_lsn->str(), name, other->second.frozen_at->str());
    }
    frozen.push_back(name);
  }
  if (static_cast<int>(frozen.size()) < needed) {
    return fmt::format(
        "{} needs {} other standbys of the quorum ({} of {}) frozen for sync revision {}, and {} "
        "{}",
        member.name, needed, *view.sync_quorum, join_names(named), view.sync_revision,
        frozen.size(), frozen.empty() ? "are" : fmt::format("are ({})", join_names(frozen)));
  }
  return std::nullopt;
}

// Synchronous mode: why a member may lack acknowledged commits by the `sync` record, or nullopt
// when the record says it has them all. `planned` as in ineligible().
std::optional<std::string> lacks_acknowledged_commits(const ClusterView& view,
                                                      const MemberRecord& member, bool planned) {
  // These nodes have every acknowledged commit: the standbys the last leader named, and that
  // leader itself (a cluster stopped or crashed whole comes back through it).
  // No record at all and no timeline ever claimed: nobody has led with a record, so the only
  // primary there has been is the node that bootstrapped the cluster (fresh seed 1100291983:
  // the answer to its first lease write was lost, it fenced itself before writing a record,
  // and nobody could ever lead again).
  const std::string& last_leader =
      !view.sync_standbys && view.sync_revision == 0 && !view.timeline_claim ? view.initialized_by
                                                                             : view.sync_leader;
  bool named = view.sync_names_any();
  if (member.name != last_leader && !view.sync_names(member.name)) {
    if (!named && last_leader.empty()) {
      return "no standby is synchronous: a takeover could lose acknowledged commits (force "
             "one with tandem failover --to NODE --allow-data-loss)";
    }
    return named ? fmt::format("{} is neither {} ({}) nor the last leader ({})", member.name,
                               view.sync_standbys->size() == 1 ? "the synchronous standby"
                                                               : "a synchronous standby",
                               join_names(*view.sync_standbys), last_leader)
                 : fmt::format(
                       "no standby is synchronous and {} is not the last leader ({}): "
                       "a takeover could lose acknowledged commits",
                       member.name, last_leader);
  }
  if (view.sync_quorum && member.name != last_leader && !planned) {
    if (auto why = quorum_shortfall(view, member)) return why;
  }
  return std::nullopt;
}

// Why a member may not take over, or nullopt when it may. `planned`: the leader hands the
// lease over after a clean stop, which passes every record to the standbys that stream (no
// freeze is needed for quorum commit).
std::optional<std::string> ineligible(const ClusterView& view, const MemberRecord& member,
                                      TimelineId newest_timeline, const HaConfig& config,
                                      bool planned = false) {
  if (member.state != PgState::kStandby) {
    return fmt::format("{} is not a running standby", member.name);
  }
  if (member.nofailover) return fmt::format("{} is tagged nofailover", member.name);
  if (member.unwatched) {
    return fmt::format("{} has no fencing watchdog running (it is started again first)",
                       member.name);
  }
  if (config.synchronous_mode) {
    if (auto why = lacks_acknowledged_commits(view, member, planned)) return why;
  }
  if (member.timeline < newest_timeline) {
    return fmt::format("{} is on timeline {}, behind timeline {}", member.name, member.timeline,
                       newest_timeline);
  }
  if (auto why = behind_claimed_timeline(view.timeline_claim, member.name, member.timeline);
      why && !claim_abandoned(view)) {
    return *why;
  }
  if (!member.received_lsn) return fmt::format("{} has received no WAL", member.name);
  // The synchronous standby has every acknowledged commit, however far behind it looks.
  if (view.last_leader_lsn && !config.synchronous_mode) {
    std::int64_t lag = view.last_leader_lsn->bytes_after(*member.received_lsn);
    if (lag > config.maximum_lag_on_failover) {
      return fmt::format("{} is {} bytes behind the last primary position, over the {} allowed",
                         member.name, lag, config.maximum_lag_on_failover);
    }
  }
  return std::nullopt;
}

TimelineId newest_standby_timeline(const ClusterView& view) {
  TimelineId newest = 0;
  for (const auto& [name, member] : view.members) {
    if (member.state == PgState::kStandby) newest = std::max(newest, member.timeline);
  }
  return newest;
}

Decision election(const ClusterView& view, const NodeObservation& node, const HaConfig& config) {
  auto self = view.members.find(config.self);
  if (self == view.members.end()) return {Action::kNone, "nobody leads; not yet published"};
  if (view.adopting && *view.adopting != config.self) {
    // Its lease may lapse before its agent runs its server (the agent renews before it stops
    // a postmaster it did not start, and may die or stall in between), and that server, under
    // no watchdog, may still write: nobody takes over until the mark goes (found by review).
    return {Action::kNone,
            fmt::format("nobody leads, but {} is being adopted and its agent does not run its "
                        "server yet: it may still write; no takeover",
                        *view.adopting)};
  }
  if (config.quorum_fencing && !node.takeover_blockers.empty()) {
    return {Action::kNone,
            fmt::format("nobody leads, but {} may still accept writes: no takeover until it "
                        "answers as a standby or a majority has not heard from it",
                        joined(node.takeover_blockers))};
  }
  // A failover the operator asked for goes to its target, if it may take over (or loss is
  // allowed); a request for a node that may not — gone, behind a timeline, not the synchronous
  // standby — holds nobody back (the simulation, seed 2181: a request for a node behind the
  // newest timeline left the cluster without a primary until it expired).
  std::optional<std::string> request_refused;
  if (view.switchover && view.switchover->force && !view.switchover->to.empty() &&
      view.switchover->to != config.self) {
    request_refused = request_refusal(view, *view.switchover, config);
  }
  if (view.switchover && view.switchover->force && !view.switchover->to.empty() &&
      !request_refused) {
    if (view.switchover->to != config.self) {
      return {Action::kNone,
              fmt::format("nobody leads; a failover to {} was requested", view.switchover->to)};
    }
    if (auto why = request_refusal(view, *view.switchover, config)) {
      return {Action::kNone, fmt::format("a failover to this node was requested, but {}", *why)};
    }
    // The reason goes to the history: an operator's acceptance of data loss is on record.
    return {Action::kTakeOver,
            view.switchover->allow_data_loss
                ? "nobody leads and a failover to this node was requested, data loss allowed by "
                  "the operator"
                : "nobody leads and a failover to this node was requested"};
  }
  if (config.nofailover) return {Action::kNone, "nobody leads, but this node is nofailover"};
  if (auto why = ineligible(view, self->second, newest_standby_timeline(view), config)) {
    return {Action::kNone, fmt::format("nobody leads, and {}", *why)};
  }
  std::vector<std::string> candidates = failover_candidates(view, config);
  if (candidates.front() != config.self) {
    return {Action::kNone,
            fmt::format("nobody leads; {} is the better candidate", candidates.front())};
  }
  std::string beyond;
  if (behind_claimed_timeline(view.timeline_claim, config.self, self->second.timeline)) {
    beyond = view.timeline_claim->by == config.self
                 ? fmt::format(
                       "; timeline {} was this node's, a history its data no longer holds: "
                       "claiming the next",
                       view.timeline_claim->timeline)
                 : fmt::format(
                       "; timeline {} was claimed by {}, which leads no more and is gone: "
                       "claiming the next",
                       view.timeline_claim->timeline, view.timeline_claim->by);
  }
  return {Action::kTakeOver,
          fmt::format("nobody leads and this node is the most advanced eligible standby ({}){}",
                      self->second.received_lsn->str(), beyond)};
}

// A standby that holds the lease: it promotes, unless it may not.
Decision lease_holder_in_recovery(const ClusterView& view, const NodeObservation& node,
                                  const HaConfig& config) {
  if (auto why = behind_claimed_timeline(view.timeline_claim, config.self, node.timeline)) {
    // It may not promote, and while it holds the lease nobody else may: it lets go, so that
    // the node on the newest timeline leads (found by the simulation: an agent frozen in the
    // middle of its promotion lost the lease to a node that could never promote).
    return {Action::kReleaseLease, fmt::format("holds the lease, but {}: release it", *why)};
  }
  // Synchronous mode: the lease alone proves nothing about commits. A takeover decided on a
  // view the store answered late took a lease released meanwhile, by a leader that had
  // restarted in place and taken commits with another standby; its own write to `sync`
  // failed, and the next cycle promoted it all the same (fresh seed 457897527761: 6
  // acknowledged commits lost). It promotes only while the record says it has them all.
  bool data_loss_allowed = view.switchover && view.switchover->force &&
                           view.switchover->allow_data_loss && view.switchover->to == config.self;
  if (config.synchronous_mode && !data_loss_allowed) {
    MemberRecord self{.name = config.self, .received_lsn = node.received_lsn};
    bool planned = view.switchover && !view.switchover->from.empty();
    if (auto why = lacks_acknowledged_commits(view, self, planned)) {
      return {Action::kReleaseLease,
              fmt::format("holds the lease while in recovery, but {}: release it", *why)};
    }
  }
  if (view.switchover && !view.switchover->from.empty()) {
    if (auto wait = quorum_hand_over_wait(view, node, config)) return *wait;
    return {Action::kPromote, fmt::format("{} handed over the lease in a requested switchover: "
                                          "promote",
                                          view.switchover->from)};
  }
  return {Action::kPromote, "holds the lease while in recovery: promote"};
}

Decision running_standby(const ClusterView& view, const NodeObservation& node,
                         const HaConfig& config) {
  if (view.leader_is(config.self) && node.timeline != 0) {  // 0: not read this time
    return lease_holder_in_recovery(view, node, config);
  }
  if (!view.leader) {
    if (must_freeze(view, node, config)) return freeze(view, "nobody leads");
    return election(view, node, config);
  }
  const std::string& leader = view.leader->name;
  if (config.quorum_fencing && view.adopting == leader && contains(node.proven_fenced, leader)) {
    // Found by MultiHostAdoptTest: the standbys adopted first, their agents proved the
    // primary's silent and one took over while the adopted primary, under no watchdog, wrote on.
    return {Action::kNone,
            fmt::format("{} has not been heard from by a majority of the agents, but its server "
                        "is being adopted and its agent does not run it yet: no watchdog fences "
                        "it; no takeover",
                        leader)};
  }
  if (config.quorum_fencing && contains(node.proven_fenced, leader)) {
    if (node.lease_unchanged_for < proof_of_fencing(config)) {
      // Renewed within the proof's window: cut off from the agents, it still writes through
      // its lease. Nobody takes over (and there is nothing to stream from meanwhile).
      return {Action::kNone,
              fmt::format("{} has not been heard from by a majority of the agents, but renewed its "
                          "lease {} ms ago or less: it may still write; no takeover",
                          leader, ms(node.lease_unchanged_for))};
    }
    // Both proofs hold: its holder has fenced itself (the lease may live on in etcd).
    if (must_freeze(view, node, config)) {
      return freeze(view,
                    fmt::format("{} has not been heard from by a majority of the agents", leader));
    }
    ClusterView without_leader = view;
    without_leader.leader.reset();
    without_leader.members.erase(leader);
    Decision decision = election(without_leader, node, config);
    if (decision.action == Action::kTakeOver) {
      decision.reason = fmt::format(
          "{} has not been heard from by a majority of the agents: it has fenced itself; {}",
          leader, decision.reason);
      decision.remove_lease_of = leader;  // the lease to remove first
    }
    if (decision.action == Action::kTakeOver) {
      decision.reason +=
          fmt::format(" (its lease unchanged for {} ms)", ms(node.lease_unchanged_for));
    }
    return decision;
  }
  if (holds_freeze(view, config)) return frozen(view, config, leader);
  if (node.upstream != leader) {
    return {Action::kFollow,
            fmt::format("streams from '{}', but {} leads: follow it", node.upstream, leader),
            leader};
  }
  if (node.not_streaming_for >= config.rejoin_after) {
    return rejoin(view, node,
                  fmt::format("pointed at {} but not streaming for {} ms", leader,
                              ms(node.not_streaming_for)),
                  leader);
  }
  return {Action::kNone, fmt::format("a standby of {}", leader), leader};
}

}  // namespace

std::chrono::milliseconds stopped_lock_holder_limit(const HaConfig& ha) {
  return ha.renew_deadline / 3;
}

std::chrono::milliseconds proof_of_fencing(const HaConfig& ha) {
  return ha.renew_deadline + 5 * ha.loop_interval;
}

std::string_view action_name(Action action) {
  switch (action) {
    case Action::kNone:
      return "none";
    case Action::kBootstrap:
      return "bootstrap";
    case Action::kClone:
      return "clone";
    case Action::kStartPrimary:
      return "start-primary";
    case Action::kStartStandby:
      return "start-standby";
    case Action::kRenewLease:
      return "renew-lease";
    case Action::kAcquireLease:
      return "acquire-lease";
    case Action::kTakeOver:
      return "take-over";
    case Action::kPromote:
      return "promote";
    case Action::kFollow:
      return "follow";
    case Action::kFence:
      return "fence";
    case Action::kDemote:
      return "demote";
    case Action::kRejoin:
      return "rejoin";
    case Action::kHandOver:
      return "hand-over";
    case Action::kReclone:
      return "reclone";
    case Action::kReleaseLease:
      return "release-lease";
  }
  return "unknown";
}

bool may_make_writable(Action action) {
  return action == Action::kPromote || action == Action::kTakeOver ||
         action == Action::kStartPrimary || action == Action::kAcquireLease;
}

std::vector<std::string> failover_candidates(const ClusterView& view, const HaConfig& config,
                                             bool planned) {
  TimelineId newest = newest_standby_timeline(view);
  std::vector<const MemberRecord*> eligible;
  for (const auto& [name, member] : view.members) {
    if (!ineligible(view, member, newest, config, planned)) eligible.push_back(&member);
  }
  std::sort(eligible.begin(), eligible.end(), [](const MemberRecord* a, const MemberRecord* b) {
    if (*a->received_lsn != *b->received_lsn) return *a->received_lsn > *b->received_lsn;
    return a->name < b->name;
  });
  std::vector<std::string> names;
  for (const MemberRecord* member : eligible) names.push_back(member->name);
  return names;
}

bool others_may_lead(const ClusterView& view, const HaConfig& config) {
  return !config.synchronous_mode || view.sync_names_any() ||
         (!view.sync_leader.empty() && view.sync_leader != config.self);
}

std::vector<std::string> ineligibility_reasons(const ClusterView& view, const HaConfig& config,
                                               bool planned) {
  TimelineId newest = newest_standby_timeline(view);
  std::vector<std::string> reasons;
  for (const auto& [name, member] : view.members) {
    if (view.leader_is(name)) continue;
    if (auto why = ineligible(view, member, newest, config, planned)) reasons.push_back(*why);
  }
  return reasons;
}

std::optional<std::string> request_refusal(const ClusterView& view,
                                           const SwitchoverRequest& request,
                                           const HaConfig& config) {
  auto member = view.members.find(request.to);
  if (member == view.members.end() || member->second.state != PgState::kStandby) {
    return fmt::format("{} is not a running standby with a live agent", request.to);
  }
  if (request.force && request.allow_data_loss) return std::nullopt;
  MemberRecord candidate = member->second;
  if (candidate.nofailover && !request.force) {
    return fmt::format("{} is tagged nofailover (a failover forces it)", request.to);
  }
  candidate.nofailover = false;
  // With a leader, the request is carried out by a hand-over after its clean stop.
  auto why =
      ineligible(view, candidate, newest_standby_timeline(view), config, view.leader.has_value());
  if (!why) return std::nullopt;
  return fmt::format("{} ({}with --allow-data-loss)", *why,
                     request.force ? "allow it " : "only a failover may go there, ");
}

HaConfig eligibility_rules(const ClusterConfig& config) {
  return {.maximum_lag_on_failover = config.ha.maximum_lag_on_failover,
          .synchronous_mode = config.ha.synchronous_mode};
}

namespace {

Decision decide_action(const std::optional<ClusterView>& view, const NodeObservation& node,
                       const HaConfig& config, TimePoint now) {
  if (!view) return without_store(node, config, now);
  if (!view->initialized && node.state != PgState::kNoData) {
    // A store without this cluster (deleted, replaced, wiped) next to a node with data: a new
    // election there could crown a second primary. Treated as a store out of reach.
    Decision decision = without_store(node, config, now);
    decision.reason =
        "the store has no record of this cluster although this node has data "
        "(was it deleted or replaced?); " +
        decision.reason;
    return decision;
  }
  if (view->paused) {
    if (node.state == PgState::kPrimary && view->leader_is(config.self)) {
      return {Action::kRenewLease, "paused: only renewing the lease"};
    }
    return {Action::kNone, "paused: no automatic action"};
  }
  switch (node.state) {
    case PgState::kNoData:
      return without_data(*view, config);
    case PgState::kStopped:
      return stopped(*view, node, config, now);
    case PgState::kStarting:
      if (view->leader_is(config.self)) {
        return {Action::kRenewLease, "PostgreSQL is starting as the leader: keep the lease"};
      }
      if (view->leader && !node.data_was_primary && holds_freeze(*view, config)) {
        return frozen(*view, config, view->leader->name);
      }
      if (view->leader && !node.data_was_primary && node.upstream != view->leader->name) {
        // A standby still recovering (not yet consistent, say) streams from nobody until it
        // is pointed at the leader: it may never become consistent otherwise.
        return {Action::kFollow,
                fmt::format("PostgreSQL is starting as a standby of '{}', but {} leads: follow it",
                            node.upstream, view->leader->name),
                view->leader->name};
      }
      if (view->leader && !view->leader_is(config.self) && node.upstream == view->leader->name &&
          leader_runs_as_primary(*view) && node.recovery_stuck_for >= kRecoveryStuckBeforeReclone) {
        return {Action::kReclone,
                fmt::format("PostgreSQL is starting as a standby of {}, its recovery waiting {} s "
                            "for WAL that nobody streams to it (removed on {}?): clone {} again "
                            "(the old data directory is moved aside)",
                            view->leader->name, ms(node.recovery_stuck_for) / 1000,
                            view->leader->name, view->leader->name),
                view->leader->name};
      }
      return {Action::kNone, "PostgreSQL is starting"};
    case PgState::kPrimary:
      return running_primary(*view, node, config, now);
    case PgState::kStandby:
      return running_standby(*view, node, config);
  }
  return {Action::kNone, "unknown state"};
}

// Whether a running primary that leads is done with the pending request: one it carried out (or
// that named an old leader), or a forced failover older than the newest timeline claim — its
// target got past its claim (promoted, or failed after), or another node was promoted since,
// and the cluster it was asked of is gone. Carried out again it would be a second promotion for
// one request (fresh seed 3100032888: the target promoted, its history write lost to a store
// outage, fenced, a take-over by the other node, then the same failover again). A first attempt
// refused at its claim leaves the claim older than the request: it is retried.
bool request_done(const ClusterView& view, const HaConfig& config) {
  if (!view.switchover) return false;
  const SwitchoverRequest& request = *view.switchover;
  bool carried_out =
      request.from != config.self && (request.to.empty() || request.to == config.self);
  bool superseded =
      request.force && view.timeline_claim && view.timeline_claim->revision > request.revision;
  return carried_out || superseded;
}

// Quorum commit: the promise a frozen standby publishes, kept while it holds and renewed at
// the record's revision once its receiver has settled; a takeover writes the record first, and
// a primary that retakes its lease writes it anew (a taker that counted freezes on the old
// revision then writes nothing).
void plan_quorum_promise(Decision& decision, const ClusterView& view, const NodeObservation& node,
                         const HaConfig& config) {
  if (decision.action == Action::kTakeOver) decision.name_in_sync_first = true;
  if (decision.action == Action::kAcquireLease && config.synchronous_mode) {
    decision.unname_sync = true;
  }
  bool streams_from_nobody =
      decision.action == Action::kFollow ? decision.source.empty() : node.upstream.empty();
  if (node.state == PgState::kNoData || node.data_was_primary || !streams_from_nobody ||
      (decision.action == Action::kStartStandby && !decision.source.empty())) {
    return;
  }
  auto self = view.members.find(config.self);
  const MemberRecord* held =
      self != view.members.end() && holds_freeze(view, config) ? &self->second : nullptr;
  // Where the receiver stopped: after a start with no receiver since, only once replay has used
  // up the WAL on disk (before, received_lsn is replay's position: a review found a restarted
  // standby promising a position below a commit it had acknowledged).
  bool settled = node.state == PgState::kStandby && node.upstream.empty() &&
                 node.receiver_stopped_for >= config.freeze_settle && node.received_lsn &&
                 node.receive_position_known;
  if (settled) {
    decision.frozen_for = view.sync_revision;
    decision.frozen_at = node.received_lsn;
    // Never lower than a position promised before: nothing was received since.
    if (held != nullptr && held->frozen_at && *held->frozen_at > *node.received_lsn) {
      decision.frozen_at = held->frozen_at;
    }
    return;
  }
  if (held != nullptr) {
    decision.frozen_for = held->frozen_for;
    decision.frozen_at = held->frozen_at;
  }
}

// The rest of the plan, for the executor to carry out without deciding anything: what a failed
// renewal means, which request is done with, and how a promotion claims its timeline and what
// it records.
void complete_plan(Decision& decision, const std::optional<ClusterView>& view,
                   const NodeObservation& node, const HaConfig& config) {
  decision.callback = role_callback(node.settled_role_before, node.state);
  if (const auto& holder = node.store_lock_held_stopped) {
    decision.unblock_store =
        Decision::UnblockStore{.pid = holder->pid,
                               .kill = holder->stopped_for >= stopped_lock_holder_limit(config),
                               .stopped_for = holder->stopped_for};
  }
  if (view && view->leader_is(config.self) && node.state == PgState::kPrimary &&
      (decision.action == Action::kRenewLease || decision.action == Action::kNone)) {
    decision.backup =
        plan_scheduled_backup(config.backup_schedule, config.backup_full_every, *view, config.self,
                              node.wall_ms, node.backup_running, node.backup_finished_ms);
    decision.read_repository = config.backup_repository && !decision.backup &&
                               !node.backup_running &&
                               repository_read_due(view->last_backup, node.wall_ms);
  }
  decision.archive_received_wal =
      config.backup_repository &&
      (decision.action == Action::kTakeOver || decision.action == Action::kPromote);
  if (decision.action == Action::kRenewLease && node.state == PgState::kPrimary) {
    // With quorum fencing the agents, not the store, keep this primary: an unreachable store
    // changes nothing, but a lost compare-and-set means another node holds the lease now.
    decision.on_renewal_failure = config.quorum_fencing ? RenewalFailure::kFenceIfTakenOver
                                                        : RenewalFailure::kFenceIfPastDeadline;
    decision.remove_request = view && request_done(*view, config);
  }
  // The adopted server is gone, replaced by a postmaster this agent started (a primary it
  // watches, or a standby): the mark goes. (One on the same data directory cannot run beside it.)
  decision.end_adoption = view && view->adopting == config.self &&
                          ((node.state == PgState::kPrimary && node.postmaster_watched) ||
                           node.state == PgState::kStandby);
  // Never ahead of a step a failover waits on: a cycle later.
  bool urgent = decision.action == Action::kTakeOver || decision.action == Action::kPromote ||
                decision.action == Action::kFence || decision.action == Action::kDemote ||
                decision.action == Action::kHandOver;
  decision.apply_settings = view && view->settings && node.state != PgState::kNoData && !urgent &&
                            view->settings->revision != node.settings_applied;
  decision.mark_claim_promoted =
      view && claim_to_mark(view->timeline_claim, config.self, node.timeline);
  if (view && config.synchronous_quorum) plan_quorum_promise(decision, *view, node, config);
  if (!view || (decision.action != Action::kTakeOver && decision.action != Action::kPromote)) {
    return;
  }
  ClusterView claimed_on = *view;
  if (!decision.remove_lease_of.empty()) {  // as the executor claims: without that leader
    claimed_on.leader.reset();
    claimed_on.members.erase(decision.remove_lease_of);
  }
  const std::optional<SwitchoverRequest>& request = claimed_on.switchover;
  decision.claim_past_newest =
      (request && request->force && request->allow_data_loss && request->to == config.self) ||
      claim_abandoned(claimed_on);
  if (view->last_leader_lsn && node.received_lsn) {
    decision.lost_bytes =
        std::max<std::int64_t>(0, view->last_leader_lsn->bytes_after(*node.received_lsn));
  }
}

}  // namespace

std::optional<std::string> restart_refusal(const ClusterView& view, const NodeObservation& now,
                                           const std::string& self) {
  bool primary_data = now.state == PgState::kPrimary || now.data_was_primary;
  if (!primary_data) return std::nullopt;
  if (now.watchdog_gone) {
    return fmt::format(
        "{}'s fencing watchdog is not running ({}): it is not restarted as a primary until its "
        "agent has started the watchdog again",
        self, now.watchdog_gone->why);
  }
  if (!view.leader_is(self)) {
    return fmt::format(
        "{} does not hold the lease, and its data is a primary's: it is not "
        "restarted as one (its agent fences or rejoins it)",
        self);
  }
  if (auto behind = now.timeline == 0
                        ? std::nullopt
                        : behind_claimed_timeline(view.timeline_claim, self, now.timeline)) {
    return fmt::format(
        "{} holds the lease, but {}: it is not restarted as a primary (its agent "
        "releases the lease)",
        self, *behind);
  }
  return std::nullopt;
}

std::optional<std::string> reinitialize_refusal(const ClusterView& view, const std::string& self) {
  if (!view.leader) return std::string("nobody leads: there is no primary to copy");
  if (view.leader_is(self)) return self + " is the leader: only a standby is reinitialized";
  if (!leader_runs_as_primary(view)) {
    return fmt::format(
        "{} holds the lease but does not run as a primary yet: a copy of it may lack what {} has",
        view.leader->name, self);
  }
  return std::nullopt;
}

std::optional<std::string> manual_promotion_refusal(const ClusterView& view,
                                                    const std::string& node) {
  if (view.sync_revision == 0) return std::nullopt;
  auto member = view.members.find(node);
  MemberRecord record = member != view.members.end() ? member->second : MemberRecord{.name = node};
  return lacks_acknowledged_commits(view, record, /*planned=*/false);
}

namespace {

// A node whose fencing watchdog does not run is never made writable: were its agent to freeze,
// nothing would stop its PostgreSQL once its lease lapsed and another node took over. The
// watchdog is started again first (Decision::restart_watchdog); a step that would make the node
// writable waits a cycle for it. Once a restart failed (seen gone in an earlier cycle), a
// running primary stops writes, and a leader whose PostgreSQL is down gives its lease up to a
// standby whose watchdog runs rather than start it.
Decision unless_unwatched(Decision decision, const std::optional<ClusterView>& view,
                          const NodeObservation& node, const HaConfig& config) {
  if (!node.watchdog_gone) return decision;
  const NodeObservation::WatchdogGone& gone = *node.watchdog_gone;
  bool failed_before = gone.gone_for > milliseconds(0);
  std::string_view action = action_name(decision.action);
  if (node.state == PgState::kPrimary && failed_before && decision.action != Action::kFence &&
      decision.action != Action::kDemote && decision.action != Action::kHandOver) {
    return {Action::kFence,
            fmt::format("its fencing watchdog has not run for {} ms ({}) and could not be "
                        "restarted: stop writes (nothing would stop this primary were its agent "
                        "to freeze); {} is not done",
                        ms(gone.gone_for), gone.why, action)};
  }
  bool makes_writable = decision.action == Action::kBootstrap || may_make_writable(decision.action);
  if (!makes_writable) return decision;
  if (failed_before && view && view->leader_is(config.self) &&
      (decision.action == Action::kStartPrimary || decision.action == Action::kPromote)) {
    return {Action::kReleaseLease,
            fmt::format("holds the lease, but its fencing watchdog has not run for {} ms ({}) and "
                        "could not be restarted: release it to a standby whose watchdog runs "
                        "rather than {}",
                        ms(gone.gone_for), gone.why, action)};
  }
  return {Action::kNone,
          fmt::format("its fencing watchdog is not running ({}): it is started again first; {} "
                      "waits for a cycle in which it runs",
                      gone.why, action)};
}

}  // namespace

Decision decide(const std::optional<ClusterView>& view, const NodeObservation& node,
                const HaConfig& config, TimePoint now) {
  Decision decision = unless_unwatched(decide_action(view, node, config, now), view, node, config);
  complete_plan(decision, view, node, config);
  decision.restart_watchdog = node.watchdog_gone.has_value();
  return decision;
}

}  // namespace tandem
