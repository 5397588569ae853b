// tandem local up | down | start | stop | crash: a whole cluster on this machine.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <set>
#include <vector>

#include "cli/commands.h"
#include "common/units.h"
#include "local/local_cluster.h"
#include "ops/status.h"
#include "proc/os_user.h"
#include "proc/ports.h"

namespace tandem {
namespace {

// The options of `local up` given on the command line (not left at their defaults).
struct GivenOptions {
  bool standbys = false, base_port = false, api_base_port = false, os_user = false, pg_bin = false,
       no_app = false, wal_cap = false, manual = false;
};

// A second `local up` on an existing tandem.yaml: an option that would change the cluster is
// refused rather than ignored.
Status check_same_layout(const ClusterConfig& existing, const LocalLayout& layout,
                         const GivenOptions& given, const std::string& path) {
  ClusterConfig wanted = local_config(layout);
  std::vector<std::string> differ;
  auto compare = [&](bool is_given, const auto& has, const auto& want, std::string_view option) {
    if (is_given && has != want) differ.push_back(fmt::format("{} ({} there)", option, has));
  };
  compare(given.standbys, existing.nodes.size() - 1, wanted.nodes.size() - 1, "--standbys");
  compare(given.base_port, existing.nodes.front().port, wanted.nodes.front().port, "--base-port");
  compare(given.api_base_port, existing.nodes.front().api_port, wanted.nodes.front().api_port,
          "--api-base-port");
  compare(given.os_user, existing.os_user, wanted.os_user, "--os-user");
  compare(given.pg_bin, existing.pg_bin, wanted.pg_bin, "--pg-bin");
  compare(given.no_app, std::string(existing.app ? "an app" : "no app"),
          std::string(wanted.app ? "an app" : "no app"), "--no-app");
  compare(given.wal_cap, existing.replication.max_slot_wal_keep_size,
          wanted.replication.max_slot_wal_keep_size, "--max-slot-wal-keep-size");
  compare(given.manual, std::string(existing.ha.agents ? "agents" : "no agents"),
          std::string(wanted.ha.agents ? "agents" : "no agents"), "--manual");
  if (differ.empty()) return {};
  return fail(ErrorCode::kConflict,
              fmt::format("{} already describes this cluster and {} differ from it: run `local "
                          "up` without them, edit that file, or use another --dir",
                          path, fmt::join(differ, ", ")));
}

// Everything a new cluster needs free, checked before anything is written.
Status check_new_ports(const ClusterConfig& config) {
  for (const NodeConfig& node : config.nodes) {
    if (auto ok = check_port_free(node.host, node.port, node.name); !ok) return ok;
    if (node.api_port == 0) continue;
    if (auto ok = check_port_free(node.host, node.api_port, node.name + "'s API"); !ok) return ok;
  }
  return {};
}

// What a new cluster's directory held before `local up` wrote into it, so that a failed one
// removes only what it created.
struct Before {
  bool token = false, password_file = false, socket_dir = false;
  std::set<std::string> data_dirs;
};

Before look_before(const ClusterConfig& config) {
  auto exists = [](const std::string& path) {
    std::error_code error;
    return std::filesystem::exists(std::filesystem::symlink_status(path, error));
  };
  Before before{.token = exists(config.api.token_file),
                .password_file = exists(config.password_file),
                .socket_dir = exists(config.socket_dir)};
  for (const NodeConfig& node : config.nodes) {
    if (exists(node.data_dir)) before.data_dirs.insert(node.data_dir);
  }
  return before;
}

// A new cluster that did not come up: what runs is stopped and what this run created is
// removed, except the logs, which say why.
void undo_new_cluster(Context& context, const std::string& config_path, const Before& before) {
  const ClusterConfig& config = context.config;
  (void)local_stop(context, std::nullopt, StopMode::kImmediate);
  std::vector<std::string> removed;
  auto remove = [&](const std::string& path) {
    std::error_code error;
    if (std::filesystem::remove_all(path, error) > 0 && !error) removed.push_back(path);
  };
  for (const NodeConfig& node : config.nodes) {
    if (!before.data_dirs.contains(node.data_dir)) remove(node.data_dir);
  }
  remove(config_path);
  if (!before.token) remove(config.api.token_file);
  if (!before.password_file) remove(config.password_file);
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) remove(config.store_file + suffix);
  remove(config.state_file);
  if (!before.socket_dir) remove(config.socket_dir);
  if (!removed.empty()) {
    fmt::print(stderr, "local up failed: removed what it created ({}); logs kept in {}\n",
               fmt::join(removed, ", "), config.log_dir);
  }
}

Status local_up_command(const LocalLayout& requested, const GivenOptions& given) {
  LocalLayout layout = requested;
  std::error_code error;
  layout.dir = std::filesystem::absolute(layout.dir, error).lexically_normal().string();
  if (!layout.dir.empty() && layout.dir.back() == '/') layout.dir.pop_back();
  std::string path = layout.dir + "/tandem.yaml";
  bool created = !std::filesystem::exists(path);
  ClusterConfig config;
  if (created) {
    config = local_config(layout);
    if (auto ok = validate(config); !ok) return ok;
  } else {
    auto loaded = load_config_file(path);
    if (!loaded) return std::unexpected(loaded.error());
    config = std::move(*loaded);
  }
  auto os_user = lookup_os_user(config.os_user);
  if (!os_user) return std::unexpected(os_user.error());
  // Root writes, chowns and runs from this directory: nobody but root and the OS user may
  // write it or a directory above it.
  if (auto ok = check_private_dir(layout.dir, *os_user); !ok) return ok;
  Before before;
  if (created) {
    if (auto ok = check_new_ports(config); !ok) return ok;
    if (!user_can_use_dir(layout.dir, *os_user, /*write=*/false)) {
      return fail(ErrorCode::kPermissionDenied,
                  fmt::format("OS user {} cannot use {}: a directory on its path is closed to it",
                              os_user->name, layout.dir));
    }
    before = look_before(config);
    // The directory and the config are root's when root runs this: the config names the files
    // root writes, so the OS user must not be able to change it. The OS user gets only what
    // PostgreSQL writes (run/, log/, the data directories, the password file).
    OsUser owner = running_as_root() ? OsUser{"root", 0, 0, "/root"} : *os_user;
    if (auto ok = ensure_owned_dir(layout.dir, owner, 0755); !ok) return ok;
    if (auto ok = write_owned_file(path, render_config(config), owner, 0644); !ok) return ok;
  } else if (auto ok = check_same_layout(config, layout, given, path); !ok) {
    return ok;
  }
  fmt::print("local cluster in {} ({} config {})\n", layout.dir, created ? "new" : "existing",
             path);
  auto session = Session::open(config, path);
  if (!session) {
    std::error_code error;
    if (created) std::filesystem::remove(path, error);  // nothing else was made yet
    return std::unexpected(session.error());
  }
  if (auto ok = local_up((*session)->context(), (*session)->config_path()); !ok) {
    if (created) undo_new_cluster((*session)->context(), path, before);
    return ok;
  }
  fmt::print("up: {} nodes. See them with: tandem -c {} status\n",
             (*session)->config().nodes.size(), path);
  return {};
}

std::optional<std::string> optional_name(const std::string& name) {
  return name.empty() ? std::nullopt : std::optional(name);
}

// The options of `local up` that a person wrote, whatever their values.
GivenOptions given_options(const CLI::App& up) {
  return GivenOptions{.standbys = up.count("--standbys") > 0,
                      .base_port = up.count("--base-port") > 0,
                      .api_base_port = up.count("--api-base-port") > 0,
                      .os_user = up.count("--os-user") > 0,
                      .pg_bin = up.count("--pg-bin") > 0,
                      .no_app = up.count("--no-app") > 0,
                      .wal_cap = up.count("--max-slot-wal-keep-size") > 0,
                      .manual = up.count("--manual") > 0};
}

// The options of `local up` as parsed, before they are checked.
struct UpOptions {
  LocalLayout layout;
  bool no_app = false;
  std::string wal_cap = "1GB";
  bool manual = false;
};

Status local_up_options(const UpOptions& options, const GivenOptions& given) {
  LocalLayout layout = options.layout;
  layout.app = !options.no_app;
  layout.agents = !options.manual;
  auto cap = parse_size(options.wal_cap);
  if (!cap) return fail_with_context(cap.error(), "--max-slot-wal-keep-size");
  layout.max_slot_wal_keep_size = *cap;
  return local_up_command(layout, given);
}

void add_local_up(CLI::App& local, CliState& state) {
  auto* up = local.add_subcommand("up", "Create (or start) the local cluster in --dir");
  auto options = std::make_shared<UpOptions>();
  LocalLayout& layout = options->layout;
  layout.dir = "tandem-local";
  up->add_option("--dir", layout.dir, "Directory of the cluster")->capture_default_str();
  up->add_option("--standbys", layout.standbys, "Number of standbys")
      ->check(CLI::Range(0, 16))
      ->capture_default_str();
  up->add_option("--base-port", layout.base_port, "Port of node1; the others follow")
      ->check(CLI::Range(1024, 65000))
      ->capture_default_str();
  up->add_option("--api-base-port", layout.api_base_port,
                 "API port of node1's agent; the others follow (default: --base-port + 2576)")
      ->check(CLI::Range(0, 65000));
  up->add_option("--os-user", layout.os_user, "Non-root OS user that runs PostgreSQL")
      ->capture_default_str();
  up->add_option("--pg-bin", layout.pg_bin, "PostgreSQL bin directory (default: discover)");
  up->add_flag("--no-app", options->no_app, "Do not create the test_app role and database");
  up->add_option("--max-slot-wal-keep-size", options->wal_cap,
                 "Most WAL a slot may hold back before it is invalidated")
      ->capture_default_str();
  up->add_flag("--manual", options->manual,
               "No agents: you promote and rejoin by hand (the walk-through's way)");
  up->callback(
      [&state, up, options] { state.result = local_up_options(*options, given_options(*up)); });
}

void add_local_down(CLI::App& local, CliState& state) {
  auto* down = local.add_subcommand("down", "Stop every node (data is kept)");
  down->callback([&state] {
    state.result = with_session(
        state, [](Context& context) { return local_stop(context, std::nullopt, StopMode::kFast); });
  });
}

void add_local_start(CLI::App& local, CliState& state) {
  auto* start = local.add_subcommand("start", "Start NODE, or every stopped node");
  auto node = std::make_shared<std::string>();
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
}

void add_local_stop(CLI::App& local, CliState& state) {
  auto* stop = local.add_subcommand("stop", "Stop NODE cleanly, or every node");
  auto node = std::make_shared<std::string>();
  stop->add_option("node", *node, "Node name");
  stop->callback([&state, node] {
    state.result = with_session(state, [&](Context& context) {
      return local_stop(context, optional_name(*node), StopMode::kFast);
    });
  });
}

void add_local_kill_pg(CLI::App& local, CliState& state) {
  auto* kill_pg = local.add_subcommand("kill-pg", "Kill only the postmaster of NODE");
  auto node = std::make_shared<std::string>();
  kill_pg->add_option("node", *node, "Node name")->required();
  kill_pg->callback([&state, node] {
    state.result =
        with_session(state, [&](Context& context) { return local_kill_postgres(context, *node); });
  });
}

void add_local_crash(CLI::App& local, CliState& state) {
  auto* crash = local.add_subcommand(
      "crash",
      "Crash NODE: its agent, what the agent started and PostgreSQL killed together (without "
      "agents: pg_ctl stop -m immediate)");
  auto node = std::make_shared<std::string>();
  crash->add_option("node", *node, "Node name")->required();
  crash->callback([&state, node] {
    state.result = with_session(state, [&](Context& context) {
      return local_stop(context, optional_name(*node), StopMode::kImmediate);
    });
  });
}

}  // namespace

void add_local_command(CLI::App& app, CliState& state) {
  auto* local = app.add_subcommand("local", "A primary and standbys on this machine, one dir");
  local->require_subcommand(1);
  add_local_up(*local, state);
  add_local_down(*local, state);
  add_local_start(*local, state);
  add_local_stop(*local, state);
  add_local_kill_pg(*local, state);
  add_local_crash(*local, state);
}

}  // namespace tandem
