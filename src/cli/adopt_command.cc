// tandem adopt DATA_DIR...: running servers tandem did not create become a tandem cluster.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "cli/commands.h"
#include "local/adopt.h"
#include "local/local_agents.h"
#include "pg/server_facts.h"

namespace tandem {
namespace {

struct AdoptArgs {
  std::vector<std::string> data_dirs;
  std::string dir = "tandem-adopted";
  std::string cluster = "main";
  std::vector<std::string> names;
  int api_base_port = 0;
  std::string pg_bin;
  std::string node;  // several machines: this host's node, from the config
};

Result<std::vector<ServerFacts>> read_servers(const AdoptArgs& args, const PgBinaries& binaries,
                                              ProcessRunner& runner) {
  std::vector<ServerFacts> servers;
  for (const std::string& dir : args.data_dirs) {
    auto facts = read_server_facts(dir, binaries, runner);
    if (!facts) return std::unexpected(facts.error());
    servers.push_back(std::move(*facts));
  }
  return servers;
}

// A resumed adoption: a server stopped while its agent runs is being restarted by that agent
// with tandem's settings (the first run was interrupted right after starting it). Waited for,
// up to a minute, saying so; then refused with the agent's log to read.
Result<std::vector<ServerFacts>> read_servers_resuming(const ClusterConfig& existing,
                                                       const AdoptArgs& args,
                                                       const PgBinaries& binaries,
                                                       ProcessRunner& runner) {
  auto restarting = [&](const ServerFacts& server) -> const NodeConfig* {
    for (const NodeConfig& node : existing.nodes) {
      std::error_code error;
      if (std::filesystem::weakly_canonical(node.data_dir, error).string() == server.data_dir) {
        return !server.running && running_agent(existing, node) ? &node : nullptr;
      }
    }
    return nullptr;
  };
  SystemClock clock;
  auto deadline = clock.steady_now() + std::chrono::minutes(1);
  bool said = false;
  while (true) {
    auto servers = read_servers(args, binaries, runner);
    if (!servers) return servers;
    const NodeConfig* waiting = nullptr;
    for (const ServerFacts& server : *servers) {
      if (waiting == nullptr) waiting = restarting(server);
    }
    if (waiting == nullptr) return servers;
    std::string log = existing.log_dir + "/" + waiting->name + ".agent.log";
    if (clock.steady_now() >= deadline) {
      return fail(ErrorCode::kConflict,
                  fmt::format("{} is stopped and its agent has not started it for a minute: see "
                              "{}",
                              waiting->name, log));
    }
    if (!std::exchange(said, true)) {
      fmt::print("  waiting for the agent of {} to start it (an adoption was interrupted)\n",
                 waiting->name);
    }
    clock.sleep_for(std::chrono::milliseconds(200));
  }
}

Status adopt(const AdoptArgs& args, const GlobalOptions& global) {
  std::error_code error;
  std::string dir = std::filesystem::absolute(args.dir, error).lexically_normal().string();
  if (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::string path = global.config_path.empty() ? dir + "/tandem.yaml" : global.config_path;
  SystemProcessRunner runner;
  std::optional<ClusterConfig> existing;
  if (std::filesystem::exists(path, error)) {
    auto loaded = load_config_file(path);
    if (!loaded) return std::unexpected(loaded.error());
    existing = std::move(*loaded);
  }
  auto binaries = find_pg_binaries(existing ? existing->pg_bin : args.pg_bin, runner);
  if (!binaries) return std::unexpected(binaries.error());
  auto major = pg_major_version(*binaries, runner);
  if (!major) return std::unexpected(major.error());
  auto servers = existing ? read_servers_resuming(*existing, args, *binaries, runner)
                          : read_servers(args, *binaries, runner);
  if (!servers) return std::unexpected(servers.error());
  AdoptOptions options{.dir = dir,
                       .cluster_name = args.cluster,
                       .names = args.names,
                       .api_base_port = args.api_base_port,
                       .pg_major = *major};
  if (existing) {
    if (auto ok = resume_options(*existing, *servers, options, path); !ok) return ok;
  }
  auto plan = plan_adoption(*servers, options);
  if (!plan) return fail_with_context(plan.error(), "not adopted, nothing changed");
  plan->config.pg_bin = args.pg_bin;
  if (existing) plan->config = *existing;
  fmt::print("adopting {} (primary {}, {} standby{}) into {}\n", plan->config.name, plan->primary,
             servers->size() - 1, servers->size() > 2 ? "s" : "", path);
  if (!plan->without_checksums.empty()) {
    fmt::print("  {} without data checksums: wal_log_hints (for pg_rewind) takes a restart\n",
               fmt::join(plan->without_checksums, ", "));
  }
  for (const ServerFacts& server : *servers) {
    if (!server.patroni_files) continue;
    fmt::print(
        "  {} was managed by Patroni: keep Patroni from starting again (systemctl disable --now "
        "patroni): even paused, it rewrites postgresql.conf and pg_hba.conf\n",
        server.data_dir);
  }
  if (auto ok = write_adopted_config(plan->config, dir, path); !ok) return ok;
  auto session = Session::open(plan->config, path);
  if (!session) return std::unexpected(session.error());
  if (auto ok = adopt_servers((*session)->context(), path, *plan, *servers); !ok) {
    // What was done is kept (each step is one a second run recognises): the person fixes the
    // cause and runs the same command again.
    return fail_with_context(ok.error(),
                             fmt::format("adoption stopped, what it did so far kept (the steps "
                                         "above; fix the cause and run it again to finish, with "
                                         "-c {})",
                                         path));
  }
  fmt::print("adopted: see it with tandem -c {} status\n", path);
  return {};
}

// adopt --node NAME: the config's node on this host (several machines).
Status adopt_node_here(const AdoptArgs& args, CliState& state) {
  if (!args.data_dirs.empty() || !args.names.empty() || args.api_base_port != 0) {
    return fail(ErrorCode::kInvalidArgument,
                "adopt --node takes its node's data directory, name and ports from the config: "
                "give no data directory, --names or --api-base-port");
  }
  return with_session_of(state, [&](Session& session) -> Status {
    Context& context = session.context();
    auto node = context.config.node(args.node);
    if (!node) return std::unexpected(node.error());
    auto major = pg_major_version(session.binaries(), session.runner());
    if (!major) return std::unexpected(major.error());
    auto server = read_server_facts((*node)->data_dir, session.binaries(), session.runner());
    if (!server) return std::unexpected(server.error());
    auto adoption = plan_node_adoption(context.config, args.node, *server, *major);
    if (!adoption) return fail_with_context(adoption.error(), "not adopted, nothing changed");
    fmt::print("adopting {} ({}, {}) into cluster {} of {}\n", args.node,
               adoption->standby ? "a standby of " + adoption->upstream : "the primary",
               (*node)->data_dir, context.config.name, session.config_path());
    if (adoption->without_checksums) {
      fmt::print("  without data checksums: wal_log_hints (for pg_rewind) takes a restart\n");
    }
    auto step = check_node_adoption(context, session.config_path(), **node, *adoption);
    if (!step) return fail_with_context(step.error(), "not adopted, nothing changed");
    if (auto ok = adopt_node(context, session.config_path(), **node, *server, *adoption, *step);
        !ok) {
      return fail_with_context(ok.error(),
                               fmt::format("adoption stopped, what it did so far kept (fix the "
                                           "cause and run it again to finish: tandem -c {} adopt "
                                           "--node {})",
                                           session.config_path(), args.node));
    }
    fmt::print("adopted {}: see it with tandem -c {} status\n", args.node, session.config_path());
    return {};
  });
}

}  // namespace

void add_adopt_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand(
      "adopt", "Take over running servers in place: a primary and the standbys streaming from it");
  auto args = std::make_shared<AdoptArgs>();
  command->add_option("data_dirs", args->data_dirs, "Data directory of each server (one machine)");
  command->add_option("--node", args->node,
                      "Several machines (etcd): adopt this host's node of the config, the "
                      "primary's host first");
  command->add_option("--dir", args->dir, "Directory for tandem.yaml, the store and logs")
      ->capture_default_str();
  command->add_option("--cluster", args->cluster, "Name of the cluster")->capture_default_str();
  command
      ->add_option("--names", args->names,
                   "Node names, in the order of the data directories (default: a standby's "
                   "slot, else the directory's name)")
      ->delimiter(',');
  command
      ->add_option("--api-base-port", args->api_base_port,
                   "API port of the first node's agent; the others follow (default: the "
                   "primary's port + 2576)")
      ->check(CLI::Range(0, 65000));
  command->add_option("--pg-bin", args->pg_bin, "PostgreSQL bin directory (default: discover)");
  command->callback([&state, args] {
    if (!args->node.empty()) {
      state.result = adopt_node_here(*args, state);
    } else if (args->data_dirs.empty()) {
      state.result = fail(ErrorCode::kInvalidArgument,
                          "adopt: name the data directories (one machine), or --node NAME with "
                          "the config (several machines)");
    } else {
      state.result = adopt(*args, state.options);
    }
  });
}

}  // namespace tandem
