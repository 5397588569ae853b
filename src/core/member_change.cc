#include "core/member_change.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace tandem {
namespace {

std::unexpected<Error> refuse(const std::string& why) {
  return fail(ErrorCode::kInvalidArgument, why);
}

// Several machines: the new member must reach the others through pg_hba.conf, which allows
// replication.networks only (read at the agents' start: widening it takes a restart).
Status reachable_by_replication(const ClusterConfig& config, const NodeConfig& node) {
  if (!config.on_several_machines()) return {};
  for (const std::string& network : config.replication.networks) {
    if (network_contains(network, node.host)) return {};
  }
  return refuse(fmt::format(
      "{} is outside replication.networks ({}): pg_hba.conf would refuse its copy; widen "
      "replication.networks in tandem.yaml on every host and restart the agents one at a time, "
      "then add it",
      node.host, fmt::join(config.replication.networks, ", ")));
}

}  // namespace

Result<ClusterConfig> plan_member_add(const ClusterConfig& config, const NodeConfig& node) {
  if (config.find_node(node.name) != nullptr) {
    return refuse(fmt::format("a node named {} is already a member", node.name));
  }
  if (config.nodes.size() < 2) {
    return refuse(
        "a cluster of one node runs without a watchdog, which a second node needs: add it to "
        "tandem.yaml and restart the agent");
  }
  if (auto ok = reachable_by_replication(config, node); !ok) return std::unexpected(ok.error());
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

MemberListAck ack_of(const ClusterConfig& config) {
  MemberListAck ack{.version = config.member_list, .names = names_of(config)};
  std::sort(ack.names.begin(), ack.names.end());
  return ack;
}

Status every_agent_took(const ClusterConfig& running,
                        const std::map<std::string, MemberListAck>& acks,
                        const std::string& except) {
  MemberListAck wanted = ack_of(running);
  for (const NodeConfig& node : running.nodes) {
    if (node.name == except) continue;
    auto ack = acks.find(node.name);
    if (ack == acks.end()) {
      return fail(ErrorCode::kConflict,
                  fmt::format("{}'s agent has not reported the member list it runs (never "
                              "started, or older than this tandem): start it (or upgrade it), "
                              "then try again; or remove {} first",
                              node.name, node.name));
    }
    if (ack->second.version != wanted.version || ack->second.names != wanted.names) {
      return fail(ErrorCode::kConflict,
                  fmt::format("{}'s agent runs member list {} ({}), not the current {} ({}): "
                              "one change at a time, each taken by every agent; start {}'s "
                              "agent or wait for it, then try again",
                              node.name, ack->second.version, fmt::join(ack->second.names, ", "),
                              wanted.version, fmt::join(wanted.names, ", "), node.name));
    }
  }
  return {};
}

}  // namespace tandem
