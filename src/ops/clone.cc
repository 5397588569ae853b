#include "ops/clone.h"

#include <fmt/format.h>

#include "ops/find_primary.h"
#include "pg/admin_connection.h"
#include "pg/node_files.h"
#include "pg/node_probe.h"
#include "pg/server_files.h"
#include "pg/slot_queries.h"

namespace tandem {

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
  if (auto ok = check_replication_login(config, *source); !ok) return ok;
  auto admin = connect_admin(config, *source);
  if (!admin) return std::unexpected(admin.error());
  auto slot = slot_active(*admin, node.name);
  if (!slot) return std::unexpected(slot.error());
  if (*slot && **slot) {
    return fail(ErrorCode::kConflict,
                fmt::format("slot {} on {} is in use by a running standby: is {} already cloned "
                            "elsewhere?",
                            node.name, source->name, node.name));
  }
  bool create_slot = !*slot;

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

}  // namespace tandem
