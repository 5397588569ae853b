// tandem restart NODE: the CLI's twin of POST /restart — the node's agent restarts its
// PostgreSQL between two of its cycles (a leader keeps its lease, watched throughout).
// tandem reload [NODE]: the agents on this machine read tandem.yaml again (SIGHUP).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <httplib.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/rolling_restart.h"
#include "local/local_agents.h"
#include "ops/cluster_settings.h"
#include "ops/status.h"
#include "proc/secret_file.h"

namespace tandem {
namespace {

// POST `path` to the node's agent with the API's token; the agent's message, or its refusal.
Result<std::string> ask_agent(const ClusterConfig& config, const NodeConfig& node,
                              const std::string& path) {
  std::string address = api_url(config, node);
  if (address.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("{} has no agent API (api_port in tandem.yaml): its agent cannot be "
                            "asked",
                            node.name));
  }
  auto token = read_secret_file(config.api.token_file);
  if (!token) return fail_with_context(token.error(), "the API's token (api.token_file)");
  httplib::Client client(address);
  if (!config.api.tls_cert_file.empty()) {
    // The agents' certificate, trusted as its own authority: the token goes only to them.
    client.set_ca_cert_path(config.api.tls_cert_file);
    client.enable_server_certificate_verification(true);
  }
  client.set_connection_timeout(std::chrono::seconds(3));
  client.set_read_timeout(std::chrono::minutes(6));  // the agent gives a request 5 minutes
  client.set_bearer_token_auth(*token);
  auto reply = client.Post(path, "{}", "application/json");
  if (!reply) {
    return fail(ErrorCode::kUnavailable,
                fmt::format("no answer from {}'s agent at {}: {}", node.name, address,
                            httplib::to_string(reply.error())));
  }
  auto body = nlohmann::json::parse(reply->body, nullptr, false);
  std::string message =
      body.is_object() ? body.value("message", body.value("error", reply->body)) : reply->body;
  if (reply->status != 200) {
    return fail(
        reply->status == 409 || reply->status == 412 ? ErrorCode::kConflict : ErrorCode::kFailed,
        fmt::format("{}'s agent refused: {}", node.name, message));
  }
  return message;
}

// SIGHUP to the agent of each node named (all by default) that runs on this machine.
Status reload_agents(Context& context, const std::string& only) {
  std::vector<std::string> signalled;
  for (const NodeConfig& node : context.config.nodes) {
    if (!only.empty() && node.name != only) continue;
    if (!running_agent(context.config, node)) continue;
    if (auto ok = kill_agent(context.config, node, SIGHUP); !ok) return ok;
    signalled.push_back(node.name);
  }
  if (!only.empty() && signalled.empty()) {
    if (auto known = context.config.node(only); !known) return std::unexpected(known.error());
    return fail(ErrorCode::kNotFound, fmt::format("no agent of {} runs on this machine", only));
  }
  if (signalled.empty()) {
    return fail(ErrorCode::kNotFound, "no agent of this cluster runs on this machine");
  }
  fmt::print("asked the agent{} of {} to read tandem.yaml again (each logs what it applied)\n",
             signalled.size() > 1 ? "s" : "", fmt::join(signalled, ", "));
  return {};
}

// tandem restart --all: each step carried out and finished — the cluster back to one primary
// and every other node streaming — before the next; the first that fails stops it, said.
// --pending trusts what each server says waits for a restart only once every agent applied the
// cluster's settings as the store has them.
Status settings_applied_everywhere(Context& context) {
  auto settings = read_cluster_settings(context);
  if (!settings) return std::unexpected(settings.error());
  if (settings->revision == 0) return {};
  auto applied = wait_settings_applied(context, settings->revision, {}, std::chrono::seconds(5));
  if (!applied) return std::unexpected(applied.error());
  if (!applied->behind.empty()) {
    return fail(ErrorCode::kConflict,
                fmt::format("the agent of {} has not applied the cluster's settings yet: what "
                            "waits for a restart there is not known",
                            fmt::join(applied->behind, ", ")));
  }
  return {};
}

Status rolling_restart(Context& context, bool pending_only) {
  if (pending_only) {
    if (auto ok = settings_applied_everywhere(context); !ok) {
      return fail_with_context(ok.error(), "not restarting");
    }
  }
  ClusterReport report = collect_status(context);
  if (!report.agents) {
    return fail(ErrorCode::kInvalidArgument,
                "a rolling restart needs the agents (ha.agents): restart each node by hand");
  }
  std::vector<RollingMember> members;
  for (const NodeReport& node : report.nodes) {
    members.push_back({node.name, node.role == NodeRole::kPrimary,
                       node.role == NodeRole::kStandby && node.replication &&
                           node.replication->state == "streaming",
                       !node.pending_restart.empty()});
  }
  auto steps = plan_rolling_restart(members, report.agents->candidates, pending_only);
  if (!steps) return fail_with_context(steps.error(), "not restarting");
  if (steps->empty()) {
    fmt::print("no node waits for a restart: nothing restarted\n");
    return {};
  }
  int done = 0;
  for (const RollingStep& step : *steps) {
    auto node = context.config.node(step.node);
    if (!node) return std::unexpected(node.error());
    Status ok;
    if (step.kind == RollingStep::Kind::kSwitchover) {
      // The agents' best candidate now: restarting the synchronous standby may have moved
      // that role to another standby since the plan was made (review).
      ClusterReport now = collect_status(context);
      std::string to = now.agents && !now.agents->candidates.empty()
                           ? now.agents->candidates.front()
                           : step.node;
      context.report(fmt::format("switchover to {}", to));
      ok = request_switchover(context, to);
      if (ok) ok = wait_cluster_ready(context, std::chrono::minutes(2));
    } else {
      context.report(fmt::format("restarting {}", step.node));
      auto message = ask_agent(context.config, **node, "/restart");
      ok = message ? wait_cluster_ready(context, std::chrono::minutes(2))
                   : Status(std::unexpected(message.error()));
    }
    if (!ok) {
      return fail(
          ok.error().code,
          fmt::format("rolling restart stopped at step {} of {} ({} {}): {}", done + 1,
                      steps->size(),
                      step.kind == RollingStep::Kind::kSwitchover ? "switchover to" : "restart of",
                      step.node, ok.error().message));
    }
    ++done;
  }
  fmt::print("restarted {}, one at a time ({} steps)\n",
             pending_only ? "the nodes that waited for a restart" : "every node", done);
  return {};
}

}  // namespace

void add_reload_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand(
      "reload", "The agents on this machine (or NODE's) read tandem.yaml again (SIGHUP)");
  auto node = std::make_shared<std::string>();
  command->add_option("node", *node, "Only this node's agent");
  command->callback([&state, node] {
    state.result =
        with_session(state, [&](Context& context) { return reload_agents(context, *node); });
  });
}

void add_restart_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand(
      "restart",
      "Restart NODE's PostgreSQL through its agent, in its role (POST /restart), or --all nodes "
      "one at a time");
  auto node = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  command->add_option("node", *node, "Node name from tandem.yaml");
  command->add_flag("--all", *all,
                    "Every node, one at a time: the standbys, then the primary after a "
                    "switchover (a rolling restart)");
  auto pending = std::make_shared<bool>(false);
  command->add_flag("--pending", *pending,
                    "With --all: only the nodes whose server waits for a restart to apply a "
                    "setting (tandem config set)");
  command->callback([&state, node, all, pending] {
    state.result = with_session(state, [&](Context& context) -> Status {
      if (*all == !node->empty()) {
        return fail(ErrorCode::kInvalidArgument, "name one node, or --all for every node");
      }
      if (*pending && !*all) {
        return fail(ErrorCode::kInvalidArgument, "--pending goes with --all");
      }
      if (*all) return rolling_restart(context, *pending);
      auto target = context.config.node(*node);
      if (!target) return std::unexpected(target.error());
      auto message = ask_agent(context.config, **target, "/restart");
      if (!message) return std::unexpected(message.error());
      fmt::print("{}\n", *message);
      return {};
    });
  });
}

}  // namespace tandem
