#include <array>
#include <utility>

#include "core/cluster_view.h"

namespace tandem {
namespace {

constexpr std::array<std::pair<PgState, std::string_view>, 5> kNames = {{
    {PgState::kNoData, "no-data"},
    {PgState::kStopped, "stopped"},
    {PgState::kStarting, "starting"},
    {PgState::kPrimary, "primary"},
    {PgState::kStandby, "standby"},
}};

}  // namespace

std::string_view pg_state_name(PgState state) {
  for (const auto& [each, name] : kNames) {
    if (each == state) return name;
  }
  return "unknown";
}

std::optional<PgState> parse_pg_state(std::string_view name) {
  for (const auto& [each, each_name] : kNames) {
    if (each_name == name) return each;
  }
  return std::nullopt;
}

}  // namespace tandem
