// tandem member add NODE --port P --data-dir D [--host H] [--api-port N] [--nofailover]
// tandem member remove NODE
//
// Members at run time. On one machine: tandem.yaml is rewritten with one member more or less
// (core/member_change.h says what is refused), the running agents read it again (SIGHUP) and
// take the new list between two cycles without restarting PostgreSQL. A new member's agent is
// started and clones it; a removed member's agent stops (PostgreSQL shut down cleanly), its slot
// is dropped on the primary, and its data directory is kept. On several machines: the new list
// is written to etcd (StoreMembers below), every agent takes it from there; the new member's
// agent is started on its host by the person adding it.
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <thread>

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
  auto shrunk = plan_member_remove(config, name, view);
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

// Several machines: the member list lives in the store, where every agent reads it; one change
// at a time, each written only once every agent reported running the list before it
// (core/member_change.h, every_agent_took), by compare-and-set on that list's revision.
class StoreMembers {
 public:
  static Result<StoreMembers> read(Session& session) {
    auto store = open_cluster_store(session.config(), session.clock());
    if (!store) return std::unexpected(store.error());
    StoreMembers members(session, std::move(*store));
    if (auto ok = members.refresh(); !ok) return std::unexpected(ok.error());
    return members;
  }

  // The running config: tandem.yaml's settings with the store's list, if it has one.
  const ClusterConfig& running() const { return running_; }
  const ClusterView& view() const { return view_; }
  std::string leader() const { return view_.leader ? view_.leader->name : ""; }

  // `next`'s nodes as the next list, if every agent took the running one (`except`: the node
  // removed). Returns the new list's version.
  Result<std::uint64_t> write(const ClusterConfig& next, const std::string& except) {
    if (auto ok = every_agent_took(running_, layout_.list_acks(snapshot_), except); !ok) {
      return fail_with_context(ok.error(), "nothing changed");
    }
    MemberList list{
        .version = running_.member_list + 1, .nodes = next.nodes, .previous = names_of(running_)};
    std::string value = encode_member_list(list);
    auto written = view_.member_list
                       ? store_->compare_and_set(layout_.member_list(), value,
                                                 view_.member_list_revision, std::nullopt)
                       : store_->create(layout_.member_list(), value, std::nullopt);
    if (!written && written.error().code == ErrorCode::kConflict) {
      return fail(ErrorCode::kConflict,
                  "the member list changed meanwhile (another tandem member?): nothing changed, "
                  "look at it again and retry");
    }
    if (!written) return fail_with_context(written.error(), "writing the member list");
    return list.version;
  }

  // Waits until every agent of `list` but `except` reported running version `version`; says
  // who took it, and who did not in `timeout`.
  void wait_taken(const ClusterConfig& list, std::uint64_t version, const std::string& except,
                  std::chrono::milliseconds timeout) {
    std::set<std::string> waiting;
    for (const NodeConfig& node : list.nodes) {
      if (node.name != except) waiting.insert(node.name);
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!waiting.empty() && std::chrono::steady_clock::now() < deadline) {
      if (refresh()) {
        auto acks = layout_.list_acks(snapshot_);
        std::erase_if(waiting, [&](const std::string& name) {
          auto ack = acks.find(name);
          if (ack == acks.end() || ack->second.version != version) return false;
          fmt::print("{}'s agent runs member list {}\n", name, version);
          return true;
        });
      }
      if (!waiting.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    for (const std::string& name : waiting) {
      fmt::print(stderr,
                 "warning: {}'s agent has not taken member list {} in {} s (stopped, or its "
                 "host away?): it takes it once it reads the store; the next change waits "
                 "for it\n",
                 name, version, std::chrono::ceil<std::chrono::seconds>(timeout).count());
    }
  }

  // Waits until `name`'s member record is gone (its agent stopped); false after `timeout`.
  bool wait_stopped(const std::string& name, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (refresh() && !view_.members.contains(name)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }

 private:
  StoreMembers(Session& session, std::unique_ptr<Store> store)
      : base_(session.config()),
        running_(session.config()),
        layout_(session.config().name),
        store_(std::move(store)) {}

  Status refresh() {
    auto snapshot = store_->read(layout_.prefix());
    if (!snapshot) return fail_with_context(snapshot.error(), "reading the cluster from etcd");
    snapshot_ = std::move(*snapshot);
    view_ = layout_.view(snapshot_);
    if (view_.member_list) running_ = with_member_list(base_, *view_.member_list);
    return {};
  }

  ClusterConfig base_;     // tandem.yaml's
  ClusterConfig running_;  // with the store's list
  ClusterLayout layout_;
  std::unique_ptr<Store> store_;
  StoreSnapshot snapshot_;
  ClusterView view_;
};

constexpr std::chrono::seconds kTakeTimeout{30};

Status add_member_in_store(Session& session, const NodeConfig& node) {
  auto members = StoreMembers::read(session);
  if (!members) return std::unexpected(members.error());
  if (auto ok = no_adoption_under_way(members->view()); !ok) return ok;
  auto grown = plan_member_add(members->running(), node);
  if (!grown) return std::unexpected(grown.error());
  auto version = members->write(*grown, "");
  if (!version) return std::unexpected(version.error());
  fmt::print("{} added: member list {} in etcd ({} members)\n", node.name, *version,
             grown->nodes.size());
  members->wait_taken(*grown, *version, node.name, kTakeTimeout);
  fmt::print(
      "now start its agent on {}: tandem -c tandem.yaml agent --node {} (tandem.yaml with the "
      "same etcd; the member list comes from etcd) — it copies the primary into {}, which must "
      "be absent or empty\n",
      node.host, node.name, node.data_dir);
  return {};
}

Status remove_member_in_store(Session& session, const std::string& name) {
  auto members = StoreMembers::read(session);
  if (!members) return std::unexpected(members.error());
  auto shrunk = plan_member_remove(members->running(), name, members->view());
  if (!shrunk) return std::unexpected(shrunk.error());
  const NodeConfig removed = *members->running().find_node(name);
  auto version = members->write(*shrunk, name);
  if (!version) return std::unexpected(version.error());
  fmt::print("{} removed: member list {} in etcd ({} members)\n", name, *version,
             shrunk->nodes.size());
  if (members->wait_stopped(name, kTakeTimeout)) {
    fmt::print("{}'s agent stopped (its PostgreSQL shut down cleanly)\n", name);
  } else {
    fmt::print(stderr,
               "warning: {}'s agent still publishes (its host away?): it stops once it reads "
               "the store; until then its slot stays\n",
               name);
  }
  members->wait_taken(*shrunk, *version, "", kTakeTimeout);
  auto next = Session::open(*shrunk, session.config_path());
  if (!next) return std::unexpected(next.error());
  if (auto ok = drop_slot((*next)->context(), name);
      !ok && ok.error().code != ErrorCode::kNotFound) {
    // The member is removed all the same: only its slot is left to drop.
    fmt::print(stderr,
               "warning: {} is removed but its slot stays ({}): drop it with `tandem slot drop "
               "{}` once its PostgreSQL is stopped\n",
               name, ok.error().message, name);
  }
  fmt::print("{} is no member any more: its data is kept in {} on {}\n", name, removed.data_dir,
             removed.host);
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
      if ((*session)->config().on_several_machines()) {
        if (wanted.api_port == 0) wanted.api_port = 8008;  // the agents ping each other there
        return add_member_in_store(**session, wanted);
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
      if ((*session)->config().on_several_machines()) {
        return remove_member_in_store(**session, *name);
      }
      return remove_member(**session, *name);
    }();
  });
}

}  // namespace tandem
