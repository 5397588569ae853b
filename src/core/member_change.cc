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

Status no_adoption_under_way(const ClusterView& view) {
  if (!view.adopting) return {};
  return refuse(fmt::format(
      "{} is being adopted (tandem adopt --node): change the members once its adoption ends",
      *view.adopting));
}

Result<ClusterConfig> plan_member_remove(const ClusterConfig& config, const std::string& name,
                                         const ClusterView& view) {
  if (auto ok = no_adoption_under_way(view); !ok) return std::unexpected(ok.error());
  std::string leader = view.leader ? view.leader->name : "";
  if (auto known = config.node(name); !known) return std::unexpected(known.error());
  if (name == leader) {
    return refuse(fmt::format(
        "{} leads the cluster: switch over to another node first (tandem switchover), then "
        "remove it",
        name));
  }
  if (view.sync_revision != 0 && view.sync_names(name)) {
    return refuse(fmt::format(
        "{} is a synchronous standby: with it gone only the leader and the standbys named with "
        "it could lead until another is named; wait until the leader names another (tandem "
        "status), then remove it",
        name));
  }
  if (view.sync_revision != 0 && leader.empty() && name == view.sync_leader) {
    return refuse(fmt::format(
        "nobody leads and {} led last in synchronous mode: it alone is known to have every "
        "acknowledged commit; bring it back (or force a failover), then remove it",
        name));
  }
  if (config.nodes.size() < 2) {
    return refuse(fmt::format("{} is the only node", name));
  }
  if (config.on_several_machines() && config.nodes.size() < 3) {
    return refuse(
        fmt::format("{} is one of two: a cluster of one node on several machines would keep the "
                    "watchdog of two (add another first)",
                    name));
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

ClusterConfig with_member_list(const ClusterConfig& config, const MemberList& list) {
  ClusterConfig next = config;
  next.nodes = list.nodes;
  next.member_list = list.version;
  next.previous_members = list.previous;
  for (NodeConfig& node : next.nodes) {
    if (const NodeConfig* mine = config.find_node(node.name)) node.nofailover = mine->nofailover;
  }
  return next;
}

Status takes_member_list(const ClusterConfig& running, const MemberList& list) {
  if (list.version <= running.member_list) {
    return refuse(fmt::format("member list {} does not follow list {}, which this agent runs",
                              list.version, running.member_list));
  }
  // Left behind (removed, then added back while away): taken as a restart would take it.
  if (list.version > running.member_list + 1) return {};
  std::size_t kept = 0;
  for (const NodeConfig& node : list.nodes) {
    const NodeConfig* before = running.find_node(node.name);
    if (before == nullptr) continue;
    ++kept;
    if (before->host != node.host || before->port != node.port ||
        before->data_dir != node.data_dir || before->api_port != node.api_port ||
        before->listen != node.listen) {
      return refuse(
          fmt::format("member list {} moves {} (its address, port or data directory): "
                      "a member moves with its agent's restart",
                      list.version, node.name));
    }
  }
  bool one_added = kept == running.nodes.size() && list.nodes.size() == kept + 1;
  bool one_removed = kept == list.nodes.size() && running.nodes.size() == kept + 1;
  if (!one_added && !one_removed) {
    return refuse(fmt::format("member list {} changes more than one member of list {}",
                              list.version, running.member_list));
  }
  return {};
}

bool previous_list_left(const ClusterConfig& running,
                        const std::map<std::string, MemberListAck>& acks) {
  std::size_t behind = 0;
  for (const std::string& name : running.previous_members) {
    auto ack = acks.find(name);
    if (ack == acks.end() || ack->second.version < running.member_list) ++behind;
  }
  return behind <= 1;
}

}  // namespace tandem
