#include "core/role_transitions.h"

#include <array>

namespace tandem {
namespace {

constexpr std::array kTransitions = {
    RoleTransition{PgState::kNoData, PgState::kPrimary, Action::kBootstrap,
                   "won the initialize key: initdb, take the lease, start"},
    RoleTransition{PgState::kNoData, PgState::kStandby, Action::kClone,
                   "copy the leader with pg_basebackup through this node's slot"},
    RoleTransition{PgState::kStopped, PgState::kPrimary, Action::kStartPrimary,
                   "the lease holder restarts in place: crash recovery, same timeline"},
    RoleTransition{PgState::kStopped, PgState::kStandby, Action::kStartStandby,
                   "start read-only, following the leader if there is one"},
    RoleTransition{PgState::kStopped, PgState::kStandby, Action::kRejoin,
                   "a former primary: follow, pg_rewind, or reclone with the old data kept"},
    RoleTransition{PgState::kStandby, PgState::kStandby, Action::kRejoin,
                   "a standby that cannot follow the leader: stop, pg_rewind, start"},
    RoleTransition{PgState::kStandby, PgState::kStandby, Action::kFollow,
                   "point primary_conninfo at the new leader and reload"},
    RoleTransition{PgState::kStandby, PgState::kPrimary, Action::kTakeOver,
                   "won the free lease by compare-and-set: promote"},
    RoleTransition{PgState::kStandby, PgState::kPrimary, Action::kPromote,
                   "holds the lease while in recovery: promote"},
    RoleTransition{PgState::kPrimary, PgState::kPrimary, Action::kRenewLease,
                   "the leader renews its lease"},
    RoleTransition{PgState::kStarting, PgState::kStarting, Action::kRenewLease,
                   "the leader keeps its lease while it restarts"},
    RoleTransition{PgState::kPrimary, PgState::kPrimary, Action::kAcquireLease,
                   "a primary whose lease lapsed retakes it while still free"},
    RoleTransition{PgState::kPrimary, PgState::kStopped, Action::kFence,
                   "cannot renew before the lease may expire: stop writes"},
    RoleTransition{PgState::kPrimary, PgState::kStopped, Action::kDemote,
                   "another node holds the lease: stop at once"},
    RoleTransition{PgState::kPrimary, PgState::kStopped, Action::kHandOver,
                   "a requested switchover: stop cleanly, then give the lease to the target"},
};

}  // namespace

std::span<const RoleTransition> role_transitions() { return kTransitions; }

const RoleTransition* find_transition(PgState from, Action action) {
  for (const RoleTransition& transition : kTransitions) {
    if (transition.from == from && transition.action == action) return &transition;
  }
  return nullptr;
}

}  // namespace tandem
