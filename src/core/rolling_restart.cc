#include "core/rolling_restart.h"

#include <fmt/format.h>

#include <algorithm>

namespace tandem {

Result<std::vector<RollingStep>> plan_rolling_restart(const std::vector<RollingMember>& members,
                                                      const std::vector<std::string>& candidates,
                                                      bool pending_only) {
  auto primaries = std::count_if(members.begin(), members.end(),
                                 [](const RollingMember& member) { return member.primary; });
  if (primaries != 1) {
    return fail(ErrorCode::kConflict,
                fmt::format("{} nodes accept writes: a rolling restart needs exactly one primary",
                            primaries));
  }
  std::vector<RollingStep> steps;
  std::string primary;
  bool primary_pending = false;
  for (const RollingMember& member : members) {
    if (member.primary) {
      primary = member.name;
      primary_pending = member.pending;
      continue;
    }
    if (!member.streaming) {
      return fail(ErrorCode::kConflict,
                  fmt::format("{} does not stream from the primary: a rolling restart would "
                              "leave the cluster two nodes short; bring it back first",
                              member.name));
    }
    if (!pending_only || member.pending)
      steps.push_back({RollingStep::Kind::kRestart, member.name});
  }
  if (pending_only && !primary_pending) return steps;
  auto target = std::find_if(candidates.begin(), candidates.end(), [&](const std::string& name) {
    return std::any_of(members.begin(), members.end(), [&](const RollingMember& member) {
      return member.name == name && !member.primary;
    });
  });
  if (target != candidates.end()) steps.push_back({RollingStep::Kind::kSwitchover, *target});
  steps.push_back({RollingStep::Kind::kRestart, primary});
  return steps;
}

}  // namespace tandem
