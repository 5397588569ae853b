// tandem member add NODE --port P --data-dir D [--host H] [--api-port N] [--nofailover]
// tandem member remove NODE
//
// Members at run time, on one machine: tandem.yaml is rewritten with one member more or less
// (core/member_change.h says what is refused), the running agents read it again (SIGHUP) and
// take the new list between two cycles without restarting PostgreSQL. A new member's agent is
// started and clones it; a removed member's agent stops (PostgreSQL shut down cleanly), its slot
// is dropped on the primary, and its data directory is kept.
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>

#include "cli/commands.h"
#include "core/member_change.h"
#include "dcs/cluster_layout.h"
#include "local/local_agents.h"
#include "ops/slot_ops.h"
#include "ops/store_access.h"
#include "proc/safe_file.h"

namespace tandem {
namespace {

// tandem.yaml replaced by `config`, keeping the file's owner and mode: root's config stays
// root's (it names the programs and files root uses).
Status rewrite_config(const std::string& path, const ClusterConfig& config) {
  struct stat status {};
  if (lstat(path.c_str(), &status) != 0 || !S_ISREG(status.st_mode)) {
    return fail(ErrorCode::kFailed, fmt::format("{} is not a regular file", path));
  }
  return write_file_atomically(path, render_config(config), status.st_uid, status.st_gid,
                               status.st_mode & 07777);
}

// A new member's data directory: absent, or an empty directory. Nothing is ever deleted.
Status fresh_data_dir(const std::string& dir) {
  std::error_code error;
  if (!std::filesystem::exists(dir, error)) return {};
  if (std::filesystem::is_directory(dir, error) && std::filesystem::is_empty(dir, error)) {
    return {};
  }
  return fail(ErrorCode::kConflict,
              fmt::format("{} exists and is not an empty directory: a new member is cloned into an "
                          "empty one (move it aside first)",
                          dir));
}

// SIGHUP to every running agent of `config`'s nodes on this machine.
void reload_running_agents(const ClusterConfig& config, Context& context) {
  for (const NodeConfig& node : config.nodes) {
    if (!running_agent(config, node)) continue;
    if (auto ok = kill_agent(config, node, SIGHUP); !ok) {
      context.report(
          fmt::format("could not ask {}'s agent to reload: {}", node.name, ok.error().message));
    } else {
      context.report(fmt::format("asked {}'s agent to take the new members", node.name));
    }
  }
}

Status add_member(Session& session, const NodeConfig& node, std::chrono::seconds wait) {
  const ClusterConfig& config = session.config();
  auto grown = plan_member_add(config, node);
  if (!grown) return std::unexpected(grown.error());
  if (auto ok = fresh_data_dir(node.data_dir); !ok) return ok;
  if (auto ok = rewrite_config(session.config_path(), *grown); !ok) return ok;
  fmt::print("{} added to {}\n", node.name, session.config_path());
  auto next = Session::open(*grown, session.config_path());
  if (!next) return std::unexpected(next.error());
  Context& context = (*next)->context();
  reload_running_agents(config, context);
  std::string then = fmt::format(
      "{} is a member now (tandem.yaml), but: start its agent with `tandem local start {}`, or "
      "take it out with `tandem member remove {}`",
      node.name, node.name, node.name);
  if (auto ok = start_agent(context, session.config_path(), *grown->find_node(node.name)); !ok) {
    return fail_with_context(ok.error(), then);
  }
  if (auto ok = wait_cluster_ready(context, wait); !ok) return ok;
  fmt::print("{} streams: the cluster has {} members\n", node.name, grown->nodes.size());
  return {};
}

Status remove_member(Session& session, const std::string& name) {
  const ClusterConfig& config = session.config();
  auto store = open_cluster_store(config, session.clock());
  if (!store) return std::unexpected(store.error());
  ClusterLayout layout(config.name);
  auto snapshot = (*store)->read(layout.prefix());
  if (!snapshot) return fail_with_context(snapshot.error(), "reading who leads");
  ClusterView view = layout.view(*snapshot);
  auto shrunk = plan_member_remove(config, name, view.leader ? view.leader->name : "");
  if (!shrunk) return std::unexpected(shrunk.error());
  const NodeConfig removed = *config.find_node(name);
  // Its agent first, cleanly (its PostgreSQL too): refused there, nothing has changed. Then the
  // file, then the others take the new list.
  Context& old_context = session.context();
  if (auto ok = signal_agent(old_context, removed, SIGTERM); !ok) {
    return fail_with_context(ok.error(), "stopping the agent of " + name + " (nothing changed)");
  }
  old_context.report(fmt::format("stopped the agent of {} and its PostgreSQL", name));
  if (auto ok = rewrite_config(session.config_path(), *shrunk); !ok) {
    return fail_with_context(
        ok.error(), fmt::format("{} is stopped but still a member (start it again with `tandem "
                                "local start {}`)",
                                name, name));
  }
  fmt::print("{} removed from {}\n", name, session.config_path());
  auto next = Session::open(*shrunk, session.config_path());
  if (!next) return std::unexpected(next.error());
  Context& context = (*next)->context();
  reload_running_agents(*shrunk, context);
  if (auto ok = drop_slot(context, name); !ok && ok.error().code != ErrorCode::kNotFound) {
    return fail_with_context(ok.error(), "dropping the slot of " + name);
  }
  fmt::print("{} is no member any more: its slot is dropped, its data kept in {}\n", name,
             removed.data_dir);
  return {};
}

}  // namespace

void add_member_command(CLI::App& app, CliState& state) {
  auto* member = app.add_subcommand("member", "Add or remove a node while the cluster runs");
  member->require_subcommand(1);
  auto* add = member->add_subcommand("add", "Add NODE: its agent starts and clones it");
  auto node = std::make_shared<NodeConfig>();
  auto wait = std::make_shared<int>(300);
  add->add_option("node", node->name, "The new node's name")->required();
  add->add_option("--host", node->host, "The address it listens on (default 127.0.0.1)");
  add->add_option("--port", node->port, "Its PostgreSQL port")->required();
  add->add_option("--data-dir", node->data_dir, "Its data directory (absent or empty)")->required();
  add->add_option("--api-port", node->api_port, "Its agent's API port (default: none)");
  add->add_flag("--nofailover", node->nofailover, "Never promote it automatically");
  add->add_option("--wait", *wait, "Seconds to wait until it streams (default 300)");
  add->callback([&state, node, wait] {
    state.result = [&]() -> Status {
      auto session = Session::open(state.options);
      if (!session) return std::unexpected(session.error());
      NodeConfig wanted = *node;
      if (!wanted.data_dir.empty()) {
        wanted.data_dir = std::filesystem::absolute(wanted.data_dir).lexically_normal();
      }
      return add_member(**session, wanted, std::chrono::seconds(*wait));
    }();
  });
  auto* remove = member->add_subcommand(
      "remove", "Remove NODE: its agent and PostgreSQL stop, its slot goes, its data stays");
  auto name = std::make_shared<std::string>();
  remove->add_option("node", *name, "The node to remove")->required();
  remove->callback([&state, name] {
    state.result = [&]() -> Status {
      auto session = Session::open(state.options);
      if (!session) return std::unexpected(session.error());
      return remove_member(**session, *name);
    }();
  });
}

}  // namespace tandem
