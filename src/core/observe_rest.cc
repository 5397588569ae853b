#include "core/observe_rest.h"

#include <algorithm>

namespace tandem {

bool may_rest(const RestFacts& facts, const HaConfig& ha) {
  if (facts.failed || facts.request_pending || !facts.answer_repeated || !facts.answer_age ||
      *facts.answer_age >= kRestAskEvery || !facts.someone_leads || facts.holder_changed) {
    return false;
  }
  // Renewed within a renewal interval and a cycle (the lease keeper renews every quarter ttl).
  if (facts.state == PgState::kPrimary) {
    return facts.leads && facts.action == Action::kRenewLease && facts.renewed_ago &&
           *facts.renewed_ago <= ha.ttl / 4 + ha.loop_interval;
  }
  // Half the lease's time: the rest is over long before anyone may take over — under quorum
  // fencing, a cycle or two before the proof that the holder fenced itself is complete.
  std::chrono::milliseconds limit = ha.ttl / 2;
  if (ha.quorum_fencing) limit = std::min(limit, proof_of_fencing(ha) - 2 * ha.loop_interval);
  return facts.state == PgState::kStandby && !facts.leads && facts.action == Action::kNone &&
         facts.lease_unchanged_for <= limit;
}

std::chrono::milliseconds rest_sleep(const RestFacts& facts, const HaConfig& ha) {
  if (ha.quorum_fencing || !facts.wakeable || !may_rest(facts, ha)) return ha.loop_interval;
  if (facts.state == PgState::kPrimary) {
    // Awake a loop interval after its keeper's next renewal is due (every quarter TTL): a
    // renewal that does not come is seen as late as before, and the cycles that follow are not
    // at rest (may_rest) until one comes — renew_deadline is still judged by a cycle every loop
    // interval, the watchdog's deadline never later. Not in synchronous mode, whose primary
    // names and unnames its synchronous standbys as they come and go.
    // And never later than a loop interval before renew_deadline (a config may set it below a
    // quarter TTL and two loop intervals).
    if (ha.synchronous_mode || !facts.renewed_ago) return ha.loop_interval;
    std::chrono::milliseconds wake_at =
        std::min(ha.ttl / 4 + ha.loop_interval, ha.renew_deadline - ha.loop_interval);
    return std::clamp(wake_at - *facts.renewed_ago, ha.loop_interval, longest_rest(ha));
  }
  if (!facts.lease_lapses_in || facts.state != PgState::kStandby) return ha.loop_interval;
  // Awake again a loop interval before the lease could lapse. A rest starts only while the lease
  // is at most half old (may_rest, by the store's age of it) and ends a loop interval before the
  // lease could lapse: the first cycle after the lease is half old looks afresh, a loop interval
  // before anyone may take over at the latest, and publishes what it saw.
  // kPastLapse more: the cycle a loop interval after that one comes just after the lapse, not a
  // hair before it (which would see the lease a loop interval late).
  return std::clamp(*facts.lease_lapses_in - ha.loop_interval + kPastLapse, ha.loop_interval,
                    longest_rest(ha));
}

std::chrono::milliseconds longest_rest(const HaConfig& ha) {
  // In synchronous mode half a lease: a standby's record there is what its primary names and
  // unnames synchronous standbys by, and keeps the TTL of a lease (record_ttl).
  std::chrono::milliseconds span = ha.synchronous_mode ? ha.ttl / 2 : ha.ttl - ha.loop_interval;
  return std::max(std::min(span - ha.loop_interval, kLongestRest), ha.loop_interval);
}

namespace {
std::chrono::milliseconds rest_part(std::chrono::milliseconds sleep, const HaConfig& ha) {
  return std::max(sleep - ha.loop_interval, std::chrono::milliseconds(0));
}
}  // namespace

std::chrono::milliseconds record_ttl(std::chrono::milliseconds sleep, const HaConfig& ha) {
  return ha.synchronous_mode ? ha.ttl : ha.ttl + rest_part(sleep, ha);
}

bool record_due(std::chrono::milliseconds since_written, std::chrono::milliseconds sleep,
                std::chrono::milliseconds written_ttl, const HaConfig& ha) {
  return since_written + rest_part(sleep, ha) >= written_ttl - (ha.ttl - ha.ttl / 3);
}

std::chrono::milliseconds agent_alive_for(const HaConfig& ha) {
  if (ha.quorum_fencing || ha.synchronous_mode) return ha.ttl;
  return ha.ttl + longest_rest(ha);
}

SleepPlan plan_sleep(std::chrono::milliseconds rest, int early_within_a_lease,
                     std::chrono::milliseconds loop_interval) {
  return {.deaf_until =
              early_within_a_lease >= kEarlyCycles ? loop_interval : std::chrono::milliseconds(0),
          .until = std::max(rest, loop_interval)};
}

bool came_early(std::chrono::milliseconds slept, std::chrono::milliseconds loop_interval) {
  return slept < loop_interval;
}

void EarlyCycles::after_sleep(std::chrono::milliseconds slept, std::chrono::milliseconds now,
                              std::chrono::milliseconds loop_interval) {
  if (came_early(slept, loop_interval)) starts_.push_back(now);
}

int EarlyCycles::within(std::chrono::milliseconds now, std::chrono::milliseconds lease) {
  std::erase_if(starts_, [&](std::chrono::milliseconds at) { return now - at >= lease; });
  return static_cast<int>(starts_.size());
}

}  // namespace tandem
