// PostgreSQL settings for the whole cluster (`tandem config set NAME=VALUE`): checked against
// the server's own definitions (pg_settings) before they are stored, refused when tandem owns
// them, and applied by every agent. Pure.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace tandem {

// One row of pg_settings: what PostgreSQL accepts for a setting.
struct SettingDefinition {
  std::string name;
  std::string vartype;  // bool, enum, integer, real, string
  std::string context;  // internal, postmaster, sighup, superuser-backend, backend, superuser, user
  std::string unit;     // "", "B", "kB", "8kB", "MB", "ms", "s", "min" (the base unit)
  std::optional<double> min;
  std::optional<double> max;
  std::vector<std::string> enumvals;
};

// The settings in the store (key `settings`), and the store revision they were written at: an
// agent applies a revision once.
struct ClusterSettings {
  std::map<std::string, std::string> values;  // name -> value, as checked
  std::int64_t revision = 0;
  bool operator==(const ClusterSettings&) const = default;
};

// Why tandem sets `name` itself (tandem.conf, tandem.yaml, the agents), or nullopt when a person
// may set it for the cluster.
std::optional<std::string> owned_setting(std::string_view name);
// The refusal of an owned setting, with the reason ("port is tandem's to set: ..."); {} otherwise.
Status not_owned(std::string_view name);

// "NAME=VALUE" split, the name lower-cased (PostgreSQL's names are) and both trimmed.
Result<std::pair<std::string, std::string>> parse_assignment(std::string_view text);

// `value` as PostgreSQL would take it for `definition` — a bool or enum in its canonical
// spelling, a number with its unit as given — or a one-line error: not a number, a unit the
// setting does not take, outside its range, not one of its values, a line break. An internal
// setting (PostgreSQL fixes it) or one tandem owns is refused with the reason.
Result<std::string> check_setting(const SettingDefinition& definition, std::string_view value);

// What an agent checks before it writes the store's settings into its data directory — the
// store may hold what no `tandem config set` would have written: every name PostgreSQL's
// grammar (lower-cased), none tandem's, no value with a line break. One bad entry refuses all.
Status check_stored_settings(const std::map<std::string, std::string>& values);

// Whether a new value takes effect only once the server restarts.
inline bool needs_restart(const SettingDefinition& definition) {
  return definition.context == "postmaster";
}

}  // namespace tandem
