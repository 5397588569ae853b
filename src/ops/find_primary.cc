#include "ops/find_primary.h"

#include <fmt/format.h>

#include <vector>

#include "pg/node_probe.h"

namespace tandem {

Result<const NodeConfig*> find_primary(Context& context, std::string_view except) {
  std::vector<const NodeConfig*> primaries;
  for (const NodeConfig& node : context.config.nodes) {
    if (node.name == except) continue;
    if (probe_node(context.config, context.controller, node).state == NodeRunState::kPrimary) {
      primaries.push_back(&node);
    }
  }
  if (primaries.empty()) {
    return fail(ErrorCode::kUnavailable,
                except.empty() ? "no primary is running"
                               : fmt::format("no primary is running besides {}", except));
  }
  if (primaries.size() > 1) {
    return fail(ErrorCode::kConflict,
                fmt::format("{} and {} both accept writes: resolve that before anything else",
                            primaries[0]->name, primaries[1]->name));
  }
  return primaries.front();
}

}  // namespace tandem
