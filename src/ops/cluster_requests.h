// Requests a person makes of the agents, through the store: a switchover, a forced failover,
// pause and resume. Shared by the CLI and the agents' HTTP API; validated here, so both refuse
// the same things with the same words.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "common/clock.h"
#include "core/cluster_config.h"
#include "dcs/cluster_layout.h"
#include "dcs/store.h"

namespace tandem {

// The checks of a request against the cluster as `view` shows it. A refusal is one line for a
// person: kConflict when the cluster's state refuses it (the API answers 412), kInvalidArgument
// or kNotFound when the request itself is wrong (400). In both, `expected_leader`, when not
// empty, must be the leader now (kConflict otherwise: the cluster changed since the person
// looked).

// kConflict when a switchover or failover is pending (the API answers 409): plan_switchover
// and plan_failover check it first.
Status check_none_pending(const ClusterView& view);

// A planned switchover away from the leader to `to`; `to` empty: the best candidate.
Result<SwitchoverRequest> plan_switchover(const ClusterView& view, const ClusterConfig& config,
                                          const std::string& expected_leader,
                                          const std::string& to);

// A forced failover to `to` (required), with or without a leader; nofailover does not stop it.
Result<SwitchoverRequest> plan_failover(const ClusterView& view, const ClusterConfig& config,
                                        const std::string& expected_leader, const std::string& to,
                                        bool allow_data_loss);

struct RequestOutcome {
  std::string new_leader;
  std::chrono::milliseconds took{0};  // from the request to the new leader running as primary
};

// Writes the request, then waits until a node other than request.from leads and its agent
// reports it running as a primary. On timeout the request is withdrawn (kTimeout). `written`,
// if given, runs once the request is in the store: the caller wakes the agents, which may
// sleep at rest (core/observe_rest.h).
Result<RequestOutcome> carry_out(Store& store, const ClusterLayout& layout,
                                 const SwitchoverRequest& request, Clock& clock,
                                 std::chrono::milliseconds timeout,
                                 const std::function<void()>& written = {});

// Pauses (or resumes) every agent's automatic actions.
Status set_paused(Store& store, const ClusterLayout& layout, bool paused);

}  // namespace tandem
