// tandem config set | unset | show: the cluster's PostgreSQL settings, kept in the coordination
// store and applied by every agent (core/cluster_settings.h checks them).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/cluster_settings.h"
#include "ops/context.h"

namespace tandem {

struct SettingsChange {
  ClusterSettings stored;                 // as written, with its new revision
  std::vector<std::string> need_restart;  // the names set that take effect only on a restart
};

// Each NAME=VALUE checked against a running node's pg_settings (the primary's when it runs),
// then all stored in one compare-and-set: one bad assignment and nothing is stored.
Result<SettingsChange> set_cluster_settings(Context& context,
                                            const std::vector<std::string>& assignments);
// The names removed in one compare-and-set; a name that is not set is refused.
Result<SettingsChange> unset_cluster_settings(Context& context,
                                              const std::vector<std::string>& names);
// The settings as stored (no settings: none, revision 0).
Result<ClusterSettings> read_cluster_settings(Context& context);

// Each running member's agent, once it applied `revision` or `timeout` passed: the members by
// name, with the settings their servers wait to restart for (given a moment to show
// `expect_pending`); the agents that did not apply it in time are in `behind`.
struct SettingsApplied {
  std::map<std::string, std::vector<std::string>> pending_restart;
  std::vector<std::string> behind;
  // Lines of tandem.settings.conf a server could not apply (pg_file_settings), by node: values
  // the checks let through that PostgreSQL refuses (a time zone it does not know, say).
  std::map<std::string, std::vector<std::string>> refused;
};
Result<SettingsApplied> wait_settings_applied(Context& context, std::int64_t revision,
                                              const std::vector<std::string>& expect_pending,
                                              std::chrono::milliseconds timeout);

}  // namespace tandem
