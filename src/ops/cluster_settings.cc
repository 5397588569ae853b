#include "ops/cluster_settings.h"

#include <fmt/format.h>

#include <algorithm>

#include "dcs/cluster_layout.h"
#include "ops/store_access.h"
#include "pg/admin_connection.h"
#include "pg/server_files.h"
#include "pg/server_queries.h"

namespace tandem {
namespace {

// A connection to a running node to read pg_settings from: the primary's when it runs.
Result<Connection> any_running_node(const ClusterConfig& config) {
  std::optional<Connection> standby;
  std::string why = "no node of the cluster is running";
  for (const NodeConfig& node : config.nodes) {
    auto connection = connect_admin(config, node);
    if (!connection) {
      why = fmt::format("{}: {}", node.name, connection.error().message);
      continue;
    }
    auto recovering = is_in_recovery(*connection);
    if (recovering && !*recovering) return std::move(*connection);
    if (recovering && !standby) standby.emplace(std::move(*connection));
  }
  if (standby) return std::move(*standby);
  return fail(
      ErrorCode::kUnavailable,
      "the settings are checked against a running server's own, and none answers (" + why + ")");
}

struct Stored {
  std::unique_ptr<Store> store;
  ClusterLayout layout;
  ClusterSettings settings;
  bool present = false;  // the key exists
};

Result<Stored> read_stored(Context& context) {
  if (!context.config.ha.agents) {
    return fail(ErrorCode::kInvalidArgument,
                "the cluster's settings are applied by its agents (ha.agents), and it has none: "
                "set them in each node's postgresql.conf");
  }
  auto store = open_cluster_store(context.config, context.clock);
  if (!store) return std::unexpected(store.error());
  Stored stored{std::move(*store), ClusterLayout(context.config.name), {}, false};
  auto snapshot = stored.store->read(stored.layout.settings());
  if (!snapshot) return std::unexpected(snapshot.error());
  if (const StoredValue* value = snapshot->find(stored.layout.settings())) {
    auto decoded = decode_settings(value->value);
    if (!decoded) {
      return fail(ErrorCode::kFailed,
                  "the store's settings record does not parse: " + stored.layout.settings());
    }
    stored.settings = std::move(*decoded);
    stored.settings.revision = value->mod_revision;
    stored.present = true;
  }
  return stored;
}

// Writes `values` in place of what was read, unless someone changed it since.
Result<ClusterSettings> write_stored(Stored& stored, std::map<std::string, std::string> values) {
  // What the agents would refuse as a whole, a setting stored by an older tandem that this one
  // owns among them, is never written: said, with the way out.
  if (auto ok = check_stored_settings(values); !ok) {
    return fail(ErrorCode::kInvalidArgument,
                ok.error().message + ": the stored settings hold it (tandem config unset it)");
  }
  std::string encoded = encode_settings(values);
  auto written = stored.present
                     ? stored.store->compare_and_set(stored.layout.settings(), encoded,
                                                     stored.settings.revision, std::nullopt)
                     : stored.store->create(stored.layout.settings(), encoded, std::nullopt);
  if (!written) {
    if (written.error().code == ErrorCode::kConflict) {
      return fail(ErrorCode::kConflict,
                  "the cluster's settings changed meanwhile (another `tandem config`): nothing "
                  "stored, try again");
    }
    return std::unexpected(written.error());
  }
  return ClusterSettings{std::move(values), *written};
}

}  // namespace

Result<SettingsChange> set_cluster_settings(Context& context,
                                            const std::vector<std::string>& assignments) {
  if (assignments.empty()) {
    return fail(ErrorCode::kInvalidArgument, "name at least one NAME=VALUE");
  }
  std::vector<std::pair<std::string, std::string>> parsed;
  for (const std::string& assignment : assignments) {
    auto pair = parse_assignment(assignment);
    if (!pair) return std::unexpected(pair.error());
    // Refused before any server is asked.
    if (auto ok = not_owned(pair->first); !ok) return std::unexpected(ok.error());
    parsed.push_back(std::move(*pair));
  }
  auto connection = any_running_node(context.config);
  if (!connection) return std::unexpected(connection.error());
  auto stored = read_stored(context);
  if (!stored) return std::unexpected(stored.error());
  SettingsChange change;
  std::map<std::string, std::string> values = stored->settings.values;
  for (const auto& [name, value] : parsed) {
    auto definition = setting_definition(*connection, name);
    if (!definition) return std::unexpected(definition.error());
    if (!*definition) {
      // An extension's setting (a dotted name) its library has not defined yet is taken as
      // PostgreSQL takes it: as a string.
      if (name.find('.') == std::string::npos) {
        return fail(ErrorCode::kInvalidArgument,
                    fmt::format("{}: PostgreSQL has no such setting", name));
      }
      values[name] = value;
      continue;
    }
    auto checked = check_setting(**definition, value);
    if (!checked) return std::unexpected(checked.error());
    values[name] = *checked;
    if (needs_restart(**definition)) change.need_restart.push_back(name);
  }
  auto written = write_stored(*stored, std::move(values));
  if (!written) return std::unexpected(written.error());
  change.stored = std::move(*written);
  return change;
}

Result<SettingsChange> unset_cluster_settings(Context& context,
                                              const std::vector<std::string>& names) {
  if (names.empty()) return fail(ErrorCode::kInvalidArgument, "name at least one setting");
  auto stored = read_stored(context);
  if (!stored) return std::unexpected(stored.error());
  std::map<std::string, std::string> values = stored->settings.values;
  for (const std::string& name : names) {
    auto parsed = parse_assignment(name + "=");
    if (!parsed) return std::unexpected(parsed.error());
    if (values.erase(parsed->first) == 0) {
      return fail(ErrorCode::kNotFound,
                  fmt::format("{} is not set for the cluster (tandem config show)", parsed->first));
    }
  }
  auto written = write_stored(*stored, std::move(values));
  if (!written) return std::unexpected(written.error());
  return SettingsChange{.stored = std::move(*written)};
}

Result<ClusterSettings> read_cluster_settings(Context& context) {
  auto stored = read_stored(context);
  if (!stored) return std::unexpected(stored.error());
  return std::move(stored->settings);
}

Result<SettingsApplied> wait_settings_applied(Context& context, std::int64_t revision,
                                              const std::vector<std::string>& expect_pending,
                                              std::chrono::milliseconds timeout) {
  auto store = open_cluster_store(context.config, context.clock);
  if (!store) return std::unexpected(store.error());
  ClusterLayout layout(context.config.name);
  SettingsApplied applied;
  Status read_error;
  auto all_applied = [&] {
    auto snapshot = (*store)->read(layout.prefix());
    if (!snapshot) {
      read_error = std::unexpected(snapshot.error());
      return false;
    }
    read_error = {};
    applied = {};
    for (const auto& [name, member] : layout.view(*snapshot).members) {
      if (member.state == PgState::kNoData) continue;
      // Applied, and the server's answer read since (the agent reads it again and again for
      // a few seconds after its reload).
      if (member.settings_revision < revision) {
        applied.behind.push_back(name);
        continue;
      }
      applied.pending_restart[name] = member.pending_restart;
      for (const std::string& error : member.configuration_errors) {
        if (error.find(kSettingsConfName) != std::string::npos) {
          applied.refused[name].push_back(error);
        }
      }
    }
    return applied.behind.empty();
  };
  if (!poll_until(context.clock, timeout, std::chrono::milliseconds(100), all_applied)) {
    if (!read_error) return std::unexpected(read_error.error());
    return applied;
  }
  // The reload reaches the server's processes a moment after the agent asked for it, and the
  // agent reads what waits for a restart every half second meanwhile: a setting that waits
  // shows within a second or two (one whose value did not change never does).
  auto all_pending_shown = [&] {
    if (!all_applied()) return false;
    if (!applied.refused.empty()) return true;
    for (const auto& [name, pending] : applied.pending_restart) {
      for (const std::string& wanted : expect_pending) {
        if (std::find(pending.begin(), pending.end(), wanted) == pending.end()) return false;
      }
    }
    return true;
  };
  (void)poll_until(context.clock, std::chrono::seconds(2), std::chrono::milliseconds(100),
                   all_pending_shown);
  return applied;
}

}  // namespace tandem
