#include "core/member_change.h"

#include <fmt/format.h>

#include <algorithm>

namespace tandem {
namespace {

std::unexpected<Error> refuse(const std::string& why) {
  return fail(ErrorCode::kInvalidArgument, why);
}

// Several machines: the agents prove a silent primary fenced by counting who it could still
// reach, and two agents counting over different member lists could both be right about a
// majority (an old primary writing on through one answer of three while a new one proves it
// fenced among four). Until the agents agree on the list before they count, refused.
Status on_one_machine(const ClusterConfig& config) {
  if (!config.on_several_machines()) return {};
  return refuse(
      "members cannot change at run time on several machines yet (the agents would count "
      "majorities over different member lists): change tandem.yaml on every host and restart "
      "the agents one at a time");
}

}  // namespace

Result<ClusterConfig> plan_member_add(const ClusterConfig& config, const NodeConfig& node) {
  if (auto ok = on_one_machine(config); !ok) return std::unexpected(ok.error());
  if (config.find_node(node.name) != nullptr) {
    return refuse(fmt::format("a node named {} is already a member", node.name));
  }
  if (config.nodes.size() < 2) {
    return refuse(
        "a cluster of one node runs without a watchdog, which a second node needs: add it to "
        "tandem.yaml and restart the agent");
  }
  ClusterConfig grown = config;
  grown.nodes.push_back(node);
  // The running values, not those sized for one more node: PostgreSQL takes them at a restart.
  if (auto ok = validate(grown); !ok) {
    return fail_with_context(ok.error(), node.name + " cannot be added");
  }
  return grown;
}

Result<ClusterConfig> plan_member_remove(const ClusterConfig& config, const std::string& name,
                                         const std::string& leader) {
  if (auto ok = on_one_machine(config); !ok) return std::unexpected(ok.error());
  if (auto known = config.node(name); !known) return std::unexpected(known.error());
  if (name == leader) {
    return refuse(fmt::format(
        "{} leads the cluster: switch over to another node first (tandem switchover), then "
        "remove it",
        name));
  }
  if (config.nodes.size() < 2) {
    return refuse(fmt::format("{} is the only node", name));
  }
  ClusterConfig shrunk = config;
  std::erase_if(shrunk.nodes, [&](const NodeConfig& node) { return node.name == name; });
  return shrunk;
}

}  // namespace tandem
