// tandem local up | down | start | stop | crash: a whole cluster on this machine.
#include <fmt/format.h>

#include <filesystem>

#include "cli/commands.h"
#include "common/units.h"
#include "ops/local_cluster.h"
#include "ops/status.h"
#include "proc/os_user.h"

namespace tandem {
namespace {

// The config of `local up`: the existing dir/tandem.yaml, or a new one written from the layout.
Result<ClusterConfig> local_up_config(const LocalLayout& layout, bool& created) {
  std::string path = layout.dir + "/tandem.yaml";
  created = !std::filesystem::exists(path);
  if (!created) return load_config_file(path);
  ClusterConfig config = local_config(layout);
  if (auto ok = validate(config); !ok) return std::unexpected(ok.error());
  auto os_user = lookup_os_user(config.os_user);
  if (!os_user) return std::unexpected(os_user.error());
  if (!user_can_use_dir(layout.dir, *os_user, /*write=*/false)) {
    return fail(ErrorCode::kPermissionDenied,
                fmt::format("OS user {} cannot use {}: a directory on its path is closed to it",
                            os_user->name, layout.dir));
  }
  if (auto ok = ensure_owned_dir(layout.dir, *os_user, 0755); !ok)
    return std::unexpected(ok.error());
  if (auto ok = write_owned_file(path, render_config(config), *os_user, 0644); !ok) {
    return std::unexpected(ok.error());
  }
  return config;
}

Status local_up_command(const LocalLayout& requested) {
  LocalLayout layout = requested;
  std::error_code error;
  layout.dir = std::filesystem::absolute(layout.dir, error).lexically_normal().string();
  if (!layout.dir.empty() && layout.dir.back() == '/') layout.dir.pop_back();
  bool created = false;
  auto config = local_up_config(layout, created);
  if (!config) return std::unexpected(config.error());
  fmt::print("local cluster in {} ({} config {}/tandem.yaml)\n", layout.dir,
             created ? "new" : "existing", layout.dir);
  auto session = Session::open(std::move(*config), layout.dir + "/tandem.yaml");
  if (!session) return std::unexpected(session.error());
  if (auto ok = local_up((*session)->context(), (*session)->config_path()); !ok) return ok;
  fmt::print("up: {} nodes. See them with: tandem -c {}/tandem.yaml status\n",
             (*session)->config().nodes.size(), layout.dir);
  return {};
}

std::optional<std::string> optional_name(const std::string& name) {
  return name.empty() ? std::nullopt : std::optional(name);
}

}  // namespace

void add_local_command(CLI::App& app, CliState& state) {
  auto* local = app.add_subcommand("local", "A primary and standbys on this machine, one dir");
  local->require_subcommand(1);

  auto* up = local->add_subcommand("up", "Create (or start) the local cluster in --dir");
  auto layout = std::make_shared<LocalLayout>();
  layout->dir = "tandem-local";
  up->add_option("--dir", layout->dir, "Directory of the cluster")->capture_default_str();
  up->add_option("--standbys", layout->standbys, "Number of standbys")
      ->check(CLI::Range(0, 16))
      ->capture_default_str();
  up->add_option("--base-port", layout->base_port, "Port of node1; the others follow")
      ->check(CLI::Range(1024, 65000))
      ->capture_default_str();
  up->add_option("--api-base-port", layout->api_base_port,
                 "API port of node1's agent; the others follow (default: --base-port + 2576)")
      ->check(CLI::Range(0, 65000));
  up->add_option("--os-user", layout->os_user, "Non-root OS user that runs PostgreSQL")
      ->capture_default_str();
  up->add_option("--pg-bin", layout->pg_bin, "PostgreSQL bin directory (default: discover)");
  auto no_app = std::make_shared<bool>(false);
  up->add_flag("--no-app", *no_app, "Do not create the test_app role and database");
  auto wal_cap = std::make_shared<std::string>("1GB");
  up->add_option("--max-slot-wal-keep-size", *wal_cap,
                 "Most WAL a slot may hold back before it is invalidated")
      ->capture_default_str();
  auto manual = std::make_shared<bool>(false);
  up->add_flag("--manual", *manual,
               "No agents: you promote and rejoin by hand (the walk-through's way)");
  up->callback([&state, layout, no_app, wal_cap, manual] {
    layout->app = !*no_app;
    layout->agents = !*manual;
    auto cap = parse_size(*wal_cap);
    if (!cap) {
      state.result = fail_with_context(cap.error(), "--max-slot-wal-keep-size");
      return;
    }
    layout->max_slot_wal_keep_size = *cap;
    state.result = local_up_command(*layout);
  });

  auto* down = local->add_subcommand("down", "Stop every node (data is kept)");
  down->callback([&state] {
    state.result = with_session(
        state, [](Context& context) { return local_stop(context, std::nullopt, StopMode::kFast); });
  });

  auto node = std::make_shared<std::string>();
  auto* start = local->add_subcommand("start", "Start NODE, or every stopped node");
  start->add_option("node", *node, "Node name");
  start->callback([&state, node] {
    auto session = Session::open(state.options);
    if (!session) {
      state.result = std::unexpected(session.error());
      return;
    }
    state.result =
        local_start((*session)->context(), (*session)->config_path(), optional_name(*node));
  });

  auto* stop = local->add_subcommand("stop", "Stop NODE cleanly, or every node");
  stop->add_option("node", *node, "Node name");
  stop->callback([&state, node] {
    state.result = with_session(state, [&](Context& context) {
      return local_stop(context, optional_name(*node), StopMode::kFast);
    });
  });

  auto* kill_pg = local->add_subcommand("kill-pg", "Kill only the postmaster of NODE");
  kill_pg->add_option("node", *node, "Node name")->required();
  kill_pg->callback([&state, node] {
    state.result =
        with_session(state, [&](Context& context) { return local_kill_postgres(context, *node); });
  });

  auto* crash = local->add_subcommand(
      "crash",
      "Crash NODE: its agent and PostgreSQL killed together (without agents: pg_ctl "
      "stop -m immediate)");
  crash->add_option("node", *node, "Node name")->required();
  crash->callback([&state, node] {
    state.result = with_session(state, [&](Context& context) {
      return local_stop(context, optional_name(*node), StopMode::kImmediate);
    });
  });
}

}  // namespace tandem
