// AgentBoard: what the agent last saw and did, for its HTTP API, and the requests the API passes
// to the agent. The agent's thread writes it after every cycle; API threads read copies.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "agent/contact_book.h"
#include "common/result.h"
#include "core/decide.h"

namespace tandem {

struct AgentSnapshot {
  NodeObservation node;
  std::optional<ClusterView> view;  // nullopt: the store could not be read this cycle
  Decision decision;
  bool decision_failed = false;
  std::uint64_t cycles = 0;
  std::chrono::steady_clock::time_point at{};  // when the cycle ended
  // The leader only: how long its lease lasts from `at` without a renewal.
  std::optional<std::chrono::milliseconds> lease_remaining;
  // The leader only: how long the store took to confirm its last lease renewal.
  std::optional<std::chrono::milliseconds> lease_round_trip;
};

// One point of the lag chart: each member's replay lag behind the primary, in bytes.
struct LagSample {
  std::int64_t time_ms = 0;  // wall clock
  std::map<std::string, std::int64_t> lag_bytes;
};

// Work only the agent's thread may do (it owns the PostgreSQL process).
enum class NodeRequest {
  kRestart,       // restart PostgreSQL in its current role
  kReinitialize,  // a standby: copy the leader afresh (the old data is moved aside, not deleted)
};

class AgentBoard {
 public:
  static constexpr std::chrono::minutes kLagWindow{10};

  AgentBoard();
  ~AgentBoard();
  AgentBoard(const AgentBoard&) = delete;
  AgentBoard& operator=(const AgentBoard&) = delete;

  // Ends the agent's sleep between two cycles (an eventfd it polls with its postmaster's
  // pidfd): a request posted here, or POST /wake from an agent that handed this node the lease
  // (core/observe_rest.h, rest_sleep). Any thread; a wake while awake makes the next sleep
  // short. wake_fd() is -1 if the eventfd could not be made (the sleep is then never woken).
  void wake();
  int wake_fd() const { return wake_fd_; }
  // Agent thread, after its sleep: the wakes so far are spent.
  void clear_wake();

  // Agent thread. Keeps one lag sample a second for the last kLagWindow.
  void publish(AgentSnapshot snapshot, std::int64_t wall_ms);
  // API threads.
  AgentSnapshot snapshot() const;
  std::deque<LagSample> lag_history() const;

  // Whether this node accepts writes or may start to before its next snapshot: it holds the
  // lease, runs (or starts) as a primary, or is in the middle of a promotion. Set by the agent
  // BEFORE such a step, so that a peer never counts it as read-only while the step runs (the
  // simulation found a node answering "standby" from its last snapshot during a long
  // promotion, and a second primary elected meanwhile).
  void set_may_write(bool may) { may_write_.store(may); }
  bool may_write() const { return may_write_.load(); }

  // The keeper's thread, once the cycle has stalled past ha.cycle_stall_limit and its writable
  // postmaster is gone: until the cycle publishes again, the last snapshot (a primary, say, and
  // a view in which it leads) is no word on this node, which is stopped and leads nobody.
  void set_stalled_out() {
    may_write_.store(false);
    stalled_out_.store(true);
  }
  bool stalled_out() const { return stalled_out_.load(); }

  // API thread: hands the request to the agent and waits until it is carried out. Only one at a
  // time: another one meanwhile is a kConflict.
  Status request(NodeRequest request, std::chrono::milliseconds timeout);
  // Hands the request to the agent without waiting (the simulation's API); kConflict while
  // another is pending.
  Status post(NodeRequest request);
  // Agent thread: the pending request, if any; finish() must follow.
  std::optional<NodeRequest> take_request();
  void finish(Status result);

 private:
  Status post_locked(NodeRequest request);
  mutable std::mutex mutex_;
  std::atomic<bool> may_write_{false};
  std::atomic<bool> stalled_out_{false};
  AgentSnapshot snapshot_;
  std::deque<LagSample> lag_;
  std::condition_variable finished_;
  std::optional<NodeRequest> pending_;
  bool taken_ = false;
  std::optional<Status> result_;
  int wake_fd_ = -1;
};

// What this node answers a peer's ping, but for the silences (the caller's contact book's).
PingReply ping_reply(const AgentBoard& board, std::string_view self);
// The whole answer to `from`'s ping at `now` (the API's, the simulation's): the ping recorded in
// `contacts` (null: none kept), and what it has not heard from the others and the list it counts
// over (kLeftTheCluster once it left) added to ping_reply.
PingReply answer_ping(const AgentBoard& board, ContactBook* contacts, std::string_view self,
                      const std::string& from, SteadyTime now);

// The members' replay lag behind the primary, in bytes: the leader's position minus what each
// has replayed (received, when it has not replayed anything). Empty without a primary.
std::map<std::string, std::int64_t> replay_lag_bytes(const ClusterView& view);

}  // namespace tandem
