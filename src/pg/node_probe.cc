#include "pg/node_probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "pg/admin_connection.h"
#include "pg/replication_queries.h"
#include "pg/server_queries.h"

namespace tandem {

NodeProbe probe_node(const ClusterConfig& config, NodeController& controller,
                     const NodeConfig& node) {
  auto connection = connect_admin(config, node);
  if (!connection) {
    auto running = controller.is_running(node);
    if (running && !*running) return {NodeRunState::kStopped, ""};
    return {NodeRunState::kUnreachable, connection.error().message};
  }
  auto standby = is_in_recovery(*connection);
  if (!standby) return {NodeRunState::kUnreachable, standby.error().message};
  return {*standby ? NodeRunState::kStandby : NodeRunState::kPrimary, ""};
}

namespace {

std::string timeline_text(std::optional<TimelineId> timeline) {
  return timeline ? std::to_string(*timeline) : "?";
}

// Looks every 20 ms over connections kept from one look to the next (a connection is a password
// exchange on each side): at 100 ms, each opening two, a clone waited 60 ms on average after
// its standby streamed, a tenth of a 100 MB clone (issue 19). After the first two seconds (a
// standby catching up on much WAL), every 200 ms: two to four queries a look on the primary.
// A connection whose query fails is opened again at the next look.
constexpr std::chrono::milliseconds kStreamingLookEvery{20};
constexpr std::chrono::milliseconds kStreamingLookOftenFor{2000};
constexpr std::chrono::milliseconds kStreamingLookLaterEvery{200};

// One wait_streaming: what its looks found, and the connections they keep.
struct StreamingWatch {
  const ClusterConfig& config;
  Clock& clock;
  const NodeConfig& primary;
  const NodeConfig& standby;
  std::string last_state = "not connected";
  bool upstream_in_recovery = false;
  bool unreachable = false;  // since unreachable_since, every connection refused
  std::chrono::steady_clock::time_point unreachable_since{};
  std::string unreachable_why;
  std::optional<Connection> upstream;
  std::optional<Connection> downstream;

  // True when the wait is over: streaming, the primary in recovery, or gone.
  bool look() {
    if (!upstream) {
      auto opened = connect_admin(config, primary);
      if (!opened) {
        if (!unreachable) unreachable_since = clock.steady_now();
        unreachable = true;
        unreachable_why = opened.error().message;
        // Gone: ends the wait as if done; told apart by wait_streaming.
        return clock.steady_now() - unreachable_since >= kUpstreamGoneAfter;
      }
      upstream.emplace(std::move(*opened));
    }
    unreachable = false;
    // The primary handed over or was demoted meanwhile: waiting for it is waiting for nothing.
    auto recovering = is_in_recovery(*upstream);
    if (!recovering) {
      upstream.reset();
      return false;
    }
    if (*recovering) return upstream_in_recovery = true;
    auto state = replication_state(*upstream, standby.name);
    if (!state) upstream.reset();
    if (!state || !*state) return false;
    last_state = **state;
    if (last_state != "streaming") return false;
    // A standby that replayed past the primary's fork streams the old timeline up to the fork
    // and then stops: it follows only once it receives the primary's timeline.
    if (!downstream) {
      auto opened = connect_admin(config, standby);
      if (!opened) return false;
      downstream.emplace(std::move(*opened));
    }
    auto primary_timeline = writing_timeline(*upstream);
    auto standby_timeline = streaming_timeline(*downstream);
    if (!standby_timeline) downstream.reset();
    if (primary_timeline != standby_timeline) {
      last_state = fmt::format("streaming timeline {}, not the primary's {}",
                               timeline_text(standby_timeline), timeline_text(primary_timeline));
      return false;
    }
    return true;
  }

  // Looks often at first, then less often, until look() is true or `timeout` passed.
  bool wait(std::chrono::milliseconds timeout) {
    auto began = clock.steady_now();
    auto once = [this] { return look(); };
    if (poll_until(clock, std::min(timeout, kStreamingLookOftenFor), kStreamingLookEvery, once))
      return true;
    if (timeout <= kStreamingLookOftenFor) return false;
    auto left =
        timeout - std::chrono::duration_cast<std::chrono::milliseconds>(clock.steady_now() - began);
    return poll_until(clock, std::max(left, std::chrono::milliseconds(0)), kStreamingLookLaterEvery,
                      once);
  }
};

}  // namespace

Status wait_streaming(const ClusterConfig& config, Clock& clock, const NodeConfig& primary,
                      const NodeConfig& standby, std::chrono::milliseconds timeout) {
  StreamingWatch watch{.config = config, .clock = clock, .primary = primary, .standby = standby};
  bool streaming = watch.wait(timeout);
  if (watch.upstream_in_recovery) {
    return fail(ErrorCode::kUnavailable,
                fmt::format("{} is no longer a primary (it is in recovery): {} follows whoever "
                            "leads now",
                            primary.name, standby.name));
  }
  if (streaming && watch.unreachable) {
    return fail(
        ErrorCode::kUnavailable,
        fmt::format("{} has refused connections for {} s ({}): {} follows whoever leads "
                    "now",
                    primary.name,
                    std::chrono::duration_cast<std::chrono::seconds>(kUpstreamGoneAfter).count(),
                    watch.unreachable_why, standby.name));
  }
  if (!streaming) {
    return fail(
        ErrorCode::kTimeout,
        fmt::format("{} is not streaming from {} after {} s (state: {})", standby.name,
                    primary.name, std::chrono::duration_cast<std::chrono::seconds>(timeout).count(),
                    watch.last_state));
  }
  return {};
}

}  // namespace tandem
