#include "core/attempts.h"

namespace tandem {
namespace {

std::chrono::milliseconds since(Attempts::TimePoint then, Attempts::TimePoint now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - then);
}

}  // namespace

void Attempts::observe(NodeObservation& node, TimePoint now) {
  if (node.state != PgState::kPrimary) {
    primary_since_.reset();
  } else if (!primary_since_) {
    primary_since_ = now;
  } else if (since(*primary_since_, now) >= std::chrono::seconds(10)) {
    starts_ = {};
  }
  if (node.state == PgState::kStandby && node.not_streaming_for == std::chrono::milliseconds(0)) {
    rejoins_ = {};
  }
  node.rejoin_failures = rejoins_.count;
  node.start_failures = starts_.count;
  if (rejoins_.since) node.rejoin_failing_for = since(*rejoins_.since, now);
  if (starts_.since) node.start_failing_for = since(*starts_.since, now);
}

void Attempts::failed(Streak& streak, TimePoint now) {
  if (streak.count++ == 0) streak.since = now;
}

void Attempts::record(const Decision& decision, bool succeeded, bool leader, TimePoint now) {
  switch (decision.action) {
    case Action::kRejoin:
      if (succeeded) {
        rejoins_ = {};
      } else if (!decision.uncounted_rejoin) {
        if (rejoins_.against != decision.source) rejoins_ = {.against = decision.source};
        failed(rejoins_, now);
      }
      break;
    case Action::kReclone:
      if (succeeded) rejoins_ = {};
      break;
    case Action::kStartPrimary:
      failed(starts_, now);  // forgiven once it runs as a primary for ten seconds
      break;
    case Action::kStartStandby:          // a leader's standby data, started to finish its promotion
      if (leader) failed(starts_, now);  // forgiven once it runs as a primary for 10 s
      break;
    case Action::kReleaseLease:
      if (succeeded) starts_ = {};
      break;
    default:
      break;
  }
}

}  // namespace tandem
