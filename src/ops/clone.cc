#include "ops/clone.h"

#include <fmt/format.h>

#include <algorithm>

#include "ops/backup.h"
#include "ops/find_primary.h"
#include "pg/admin_connection.h"
#include "pg/node_files.h"
#include "pg/node_probe.h"
#include "pg/postmaster.h"
#include "pg/server_files.h"
#include "pg/slot_queries.h"

namespace tandem {

namespace {

// Before a copy starts: the replication role logs in to `source`, and the node's slot there is
// not in use by a running standby. The superuser's connection, and whether the slot exists.
struct CopySource {
  Connection admin;
  bool slot_exists = false;
};

Result<CopySource> check_copy_source(const ClusterConfig& config, const NodeConfig& source,
                                     const std::string& node) {
  if (auto ok = check_replication_login(config, source); !ok) return std::unexpected(ok.error());
  auto admin = connect_admin(config, source);
  if (!admin) return std::unexpected(admin.error());
  auto slot = slot_active(*admin, node);
  if (!slot) return std::unexpected(slot.error());
  if (*slot && **slot) {
    return fail(ErrorCode::kConflict,
                fmt::format("slot {} on {} is in use by a running standby: is {} already cloned "
                            "elsewhere?",
                            node, source.name, node));
  }
  return CopySource{.admin = std::move(*admin), .slot_exists = slot->has_value()};
}

}  // namespace

Status clone_standby(Context& context, const NodeConfig& node,
                     std::optional<std::string> source_name) {
  const ClusterConfig& config = context.config;
  if (auto ok = check_new_node(node); !ok) return ok;
  const NodeConfig* source = nullptr;
  if (source_name) {
    auto named = config.node(*source_name);
    if (!named) return std::unexpected(named.error());
    source = *named;
  } else {
    auto primary = find_primary(context, node.name);
    if (!primary) return fail_with_context(primary.error(), "nothing to clone from");
    source = *primary;
  }
  if (source->name == node.name) {
    return fail(ErrorCode::kInvalidArgument, fmt::format("{} cannot clone itself", node.name));
  }
  auto checked = check_copy_source(config, *source, node.name);
  if (!checked) return std::unexpected(checked.error());
  bool create_slot = !checked->slot_exists;

  if (auto ok = prepare_dirs(context.config, context.os_user, node); !ok) return ok;
  std::string source_conninfo = upstream_conninfo(config, *source, node.name);
  context.report(fmt::format("copying {} into {} (pg_basebackup, fast checkpoint, slot {})",
                             source->name, node.data_dir, node.name));
  if (auto ok = context.controller.base_backup(node, source_conninfo, node.name, create_slot);
      !ok) {
    return ok;
  }
  if (auto ok = write_node_files(context.config, context.os_user, node, source); !ok) return ok;
  if (auto ok = context.controller.start(node); !ok) return ok;
  if (auto ok =
          wait_streaming(context.config, context.clock, *source, node, context.streaming_timeout);
      !ok) {
    return ok;
  }
  context.report(
      fmt::format("{} streams from {} on {}:{}", node.name, source->name, node.host, node.port));
  return {};
}

namespace {

// Where clone_from_backup copies from, checked before anything changes: the backup's label (the
// newest, or the one named), the running primary and a node with pgbackrest.conf.
struct BackupCloneSource {
  const NodeConfig* primary = nullptr;
  const NodeConfig* source = nullptr;
  std::string label;
};

Result<BackupCloneSource> backup_clone_source(Context& context, const NodeConfig& node,
                                              const std::string& set) {
  const ClusterConfig& config = context.config;
  if (!config.backup.enabled()) {
    return fail(ErrorCode::kInvalidArgument,
                "--from-backup needs a repository: backup.repository in the config");
  }
  if (auto ok = check_new_node(node); !ok) return std::unexpected(ok.error());
  auto primary = find_primary(context, node.name);
  if (!primary) {
    return std::unexpected(fail_with_context(primary.error(), "no primary to stream from").error());
  }
  auto source = node_with_backrest_conf(config);
  if (!source) return std::unexpected(source.error());
  BackRest backrest(config, *context.runner);
  auto repository = backrest.info(**source);
  if (!repository) {
    return std::unexpected(fail_with_context(repository.error(), "reading the repository").error());
  }
  if (repository->backups.empty()) {
    return fail(ErrorCode::kConflict,
                "the repository has no backup yet: take one (tandem backup), or clone from the "
                "primary");
  }
  std::string label = set.empty() ? repository->backups.back().label : set;
  if (std::none_of(repository->backups.begin(), repository->backups.end(),
                   [&](const BackupSet& backup) { return backup.label == label; })) {
    return fail(ErrorCode::kNotFound,
                fmt::format("the repository has no backup {} (see tandem backup list)", label));
  }
  return BackupCloneSource{.primary = *primary, .source = *source, .label = label};
}

}  // namespace

Status clone_from_backup(Context& context, const NodeConfig& node, const std::string& set) {
  const ClusterConfig& config = context.config;
  auto from = backup_clone_source(context, node, set);
  if (!from) return std::unexpected(from.error());
  const NodeConfig* primary = from->primary;
  const std::string& label = from->label;
  BackRest backrest(config, *context.runner);
  // What would fail only after an hour of restoring is checked first: the replication login,
  // and a slot of this name in use by another standby.
  auto checked = check_copy_source(config, *primary, node.name);
  if (!checked) return std::unexpected(checked.error());
  auto created = ensure_slot(checked->admin, node.name);
  if (!created) return fail_with_context(created.error(), "the slot of " + node.name);
  if (*created) {
    context.report(fmt::format("created slot {} on {}", node.name, primary->name));
  }
  // A slot made here and left behind by a failure below would hold the primary's WAL for ever.
  auto drop_made_slot = [&](Status failed) -> Status {
    if (*created) {
      if (auto connection = connect_admin(config, *primary)) {
        (void)drop_replication_slot(*connection, node.name);
      }
    }
    return failed;
  };
  if (auto ok = prepare_dirs(config, context.os_user, node); !ok) return drop_made_slot(ok);
  context.report(fmt::format("restoring backup {} of stanza {} into {}", label, config.stanza(),
                             node.data_dir));
  // --type=preserve: pgBackRest writes no recovery settings of its own (they would name its
  // options, not this node's pgbackrest.conf); tandem.conf gives the standby's below.
  if (auto ok = backrest.run_restore(
          *from->source,
          {"--pg1-path=" + node.data_dir, "--type=preserve", "--set=" + label, "restore"});
      !ok) {
    return drop_made_slot(fail_with_context(
        ok.error(),
        fmt::format("restoring into {} (what was restored is kept there)", node.data_dir)));
  }
  if (auto ok = write_node_files(config, context.os_user, node, primary); !ok) {
    return drop_made_slot(ok);
  }
  // start() gives up waiting after its start timeout; a standby with much archive to replay
  // runs on meanwhile, and the wait for streaming below is the one that counts.
  if (auto ok = context.controller.start(node); !ok && !running_postmaster(node.data_dir)) {
    return drop_made_slot(ok);
  }
  context.report(fmt::format("{} started: replaying the archive from the backup on", node.name));
  if (auto ok = wait_streaming(
          config, context.clock, *primary, node,
          std::max<std::chrono::milliseconds>(context.streaming_timeout, std::chrono::minutes(10)));
      !ok) {
    return ok;
  }
  context.report(
      fmt::format("{} streams from {} on {}:{} (made from backup {}, no copy of the "
                  "primary)",
                  node.name, primary->name, node.host, node.port, label));
  return {};
}

}  // namespace tandem
