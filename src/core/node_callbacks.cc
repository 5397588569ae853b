#include "core/node_callbacks.h"

namespace tandem {

std::string_view callback_event_name(CallbackEvent event) {
  switch (event) {
    case CallbackEvent::kStart:
      return "on_start";
    case CallbackEvent::kStop:
      return "on_stop";
    case CallbackEvent::kRoleChange:
      return "on_role_change";
    case CallbackEvent::kRestart:
      return "on_restart";
  }
  return "on_unknown";
}

std::optional<std::string> settled_role(PgState state) {
  switch (state) {
    case PgState::kPrimary:
      return "primary";
    case PgState::kStandby:
      return "standby";
    case PgState::kStopped:
    case PgState::kNoData:
      return "stopped";
    case PgState::kStarting:
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<Callback> role_callback(const std::optional<std::string>& before, PgState now) {
  std::optional<std::string> after = settled_role(now);
  if (!before || !after || *before == *after) return std::nullopt;
  if (*before == "stopped") return Callback{CallbackEvent::kStart, *after};
  if (*after == "stopped") return Callback{CallbackEvent::kStop, *before};
  return Callback{CallbackEvent::kRoleChange, *after};
}

}  // namespace tandem
