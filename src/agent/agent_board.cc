#include "agent/agent_board.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace tandem {

AgentBoard::AgentBoard() : wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

AgentBoard::~AgentBoard() {
  if (wake_fd_ >= 0) close(wake_fd_);
}

void AgentBoard::wake() {
  if (wake_fd_ < 0) return;
  std::uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);  // full (2^64 - 2 wakes) is as good as woken
}

void AgentBoard::clear_wake() {
  if (wake_fd_ < 0) return;
  std::uint64_t count = 0;
  (void)!read(wake_fd_, &count, sizeof count);  // EAGAIN: none
}

std::map<std::string, std::int64_t> replay_lag_bytes(const ClusterView& view) {
  std::map<std::string, std::int64_t> lags;
  if (!view.leader) return lags;
  auto leader = view.members.find(view.leader->name);
  if (leader == view.members.end() || leader->second.state != PgState::kPrimary ||
      !leader->second.received_lsn) {
    return lags;
  }
  Lsn head = *leader->second.received_lsn;
  for (const auto& [name, member] : view.members) {
    if (name == view.leader->name) continue;
    auto position = member.replayed_lsn ? member.replayed_lsn : member.received_lsn;
    if (member.state != PgState::kStandby || !position) continue;
    lags[name] = std::max<std::int64_t>(0, head.bytes_after(*position));
  }
  return lags;
}

void AgentBoard::publish(AgentSnapshot snapshot, std::int64_t wall_ms) {
  std::lock_guard lock(mutex_);
  if (snapshot.view && (lag_.empty() || wall_ms - lag_.back().time_ms >= 1000)) {
    lag_.push_back({.time_ms = wall_ms, .lag_bytes = replay_lag_bytes(*snapshot.view)});
    auto window = std::chrono::duration_cast<std::chrono::milliseconds>(kLagWindow).count();
    while (!lag_.empty() && wall_ms - lag_.front().time_ms > window) lag_.pop_front();
  }
  snapshot_ = std::move(snapshot);
  stalled_out_.store(false);
}

AgentSnapshot AgentBoard::snapshot() const {
  std::lock_guard lock(mutex_);
  return snapshot_;
}

PingReply ping_reply(const AgentBoard& board, std::string_view self) {
  AgentSnapshot snapshot = board.snapshot();
  bool standby_data = snapshot.node.state != PgState::kNoData && !snapshot.node.data_was_primary;
  // A cycle stalled out answers from what its keeper knows, not from its last snapshot: the
  // primary it saw is stopped (fresh multi-host seed 204527433: a stalled primary's pings said
  // "primary, leading" from that snapshot for 20 s after its postmaster had been stopped and
  // its lease given up, and nobody took over).
  if (board.stalled_out()) {
    return {.state = PgState::kStopped, .leader = false, .standby_data = standby_data};
  }
  bool leads = snapshot.view && snapshot.view->leader;
  return {.state = snapshot.node.state,
          .leader = board.may_write() || (snapshot.view && snapshot.view->leader_is(self)),
          .follows = leads ? snapshot.view->leader->name : std::string(),
          .standby_data = standby_data};
}

PingReply answer_ping(const AgentBoard& board, ContactBook* contacts, std::string_view self,
                      const std::string& from, SteadyTime now) {
  if (contacts != nullptr) contacts->served(from, now);
  PingReply reply = ping_reply(board, self);
  if (contacts != nullptr) {
    reply.silence = contacts->silence(now);
    reply.list = contacts->list();
  }
  return reply;
}

std::deque<LagSample> AgentBoard::lag_history() const {
  std::lock_guard lock(mutex_);
  return lag_;
}

Status AgentBoard::post(NodeRequest request) {
  std::lock_guard lock(mutex_);
  return post_locked(request);
}

Status AgentBoard::post_locked(NodeRequest request) {
  if (pending_) return fail(ErrorCode::kConflict, "another request is being carried out");
  pending_ = request;
  taken_ = false;
  result_.reset();
  wake();
  return {};
}

Status AgentBoard::request(NodeRequest request, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (auto ok = post_locked(request); !ok) return ok;
  bool done = finished_.wait_for(lock, timeout, [&] { return result_.has_value(); });
  Status result = done ? *result_
                       : fail(ErrorCode::kTimeout,
                              taken_ ? "the agent is still carrying the request out"
                                     : "the agent did not take the request up (is it stuck?)");
  // An untaken request is withdrawn; a taken one finishes in the agent regardless.
  if (done || !taken_) pending_.reset();
  return result;
}

std::optional<NodeRequest> AgentBoard::take_request() {
  std::lock_guard lock(mutex_);
  if (!pending_ || taken_) return std::nullopt;
  taken_ = true;
  return pending_;
}

void AgentBoard::finish(Status result) {
  std::lock_guard lock(mutex_);
  result_ = std::move(result);
  pending_.reset();
  finished_.notify_all();
}

}  // namespace tandem
