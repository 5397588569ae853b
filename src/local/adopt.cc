#include "local/adopt.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "dcs/cluster_layout.h"
#include "local/local_agents.h"
#include "ops/store_access.h"
#include "pg/admin_connection.h"
#include "pg/node_files.h"
#include "pg/roles.h"
#include "pg/server_files.h"
#include "pg/server_queries.h"
#include "pg/slot_queries.h"
#include "proc/os_user.h"
#include "proc/safe_file.h"
#include "proc/secret_file.h"

namespace tandem {
namespace {

constexpr std::string_view kHbaMarker = "# tandem (adopt):";
// Nodes on several machines: tandem's lines between the hosts, above the one above if it is
// there (connecting first may have added it).
constexpr std::string_view kHostsHbaMarker = "# tandem (adopt, several machines):";

// The superuser over the node's socket as the server runs now (a standby may still use its
// own socket directory until its restart).
Result<Connection> connect_now(const Context& context, const NodeConfig& node,
                               const ServerFacts& server) {
  ClusterConfig as_found = context.config;
  as_found.socket_dir = server.socket_dir.empty() ? context.config.socket_dir : server.socket_dir;
  return connect_local_admin(as_found, node);
}

// tandem's password file as it is: "" when absent; never read through a link (root reads it, and
// writes it back: a link planted there would copy another file).
Result<std::string> read_password_file(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::exists(std::filesystem::symlink_status(path, error))) return "";
  return read_file_nofollow(path);
}

// A line for `role` added to tandem's password file (made if absent, mode 0600).
Status add_password(Context& context, const std::string& role, const std::string& password) {
  const ClusterConfig& config = context.config;
  auto read = read_password_file(config.password_file);
  if (!read) return std::unexpected(read.error());
  std::string existing = *read;
  std::string text = render_passfile({{role, password}});
  if (!existing.empty()) {
    if (existing.back() != '\n') existing += '\n';
    text = existing + text.substr(text.find('\n') + 1);  // without a second header
  }
  return write_owned_file(config.password_file, text, context.os_user, 0600);
}

Status write_passwords(Context& context, const std::optional<std::string>& replication_password) {
  const ClusterConfig& config = context.config;
  if (auto token = ensure_secret_file(config.api.token_file); !token) {
    return std::unexpected(token.error());
  }
  if (!replication_password) return {};
  std::string existing = read_password_file(config.password_file).value_or("");
  if (find_password(existing, config.replication.user)) return {};
  if (auto ok = add_password(context, config.replication.user, *replication_password); !ok) {
    return ok;
  }
  context.report(fmt::format("the password of {} (from primary_conninfo) kept in {} (mode 0600)",
                             config.replication.user, config.password_file));
  return {};
}

// Appends `text` to a file of the data directory, never through a link planted there.
Status append(const std::string& path, const std::string& text) {
  auto file = open_file_nofollow(path, O_WRONLY | O_APPEND);
  if (!file) return std::unexpected(file.error());
  if (::write(file->get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return fail(ErrorCode::kFailed, "cannot append to " + path);
  }
  return {};
}

Status include_tandem_conf(Context& context, const NodeConfig& node) {
  std::string path = node.data_dir + "/postgresql.conf";
  auto text = read_file_nofollow(path);
  if (!text) return std::unexpected(text.error());
  if (text->find(kIncludeLine) != std::string::npos) return {};
  if (auto ok = append(path, fmt::format("\n# tandem's settings ({}) come last.\n{}\n",
                                         kTandemConfName, kIncludeLine));
      !ok) {
    return ok;
  }
  context.report(fmt::format("{}: postgresql.conf includes {} (tandem's settings) last", node.name,
                             kTandemConfName));
  return {};
}

// The superuser's line first in pg_hba.conf (peer, through tandem's ident map for the OS user
// and root), the user's own lines kept after it. The map first: a line naming a map that is not
// there yet would refuse everyone it matches. Each file is checked on its own (a run
// interrupted between the two finishes the other).
Status add_ident_map(Context& context, const NodeConfig& node) {
  const ClusterConfig& config = context.config;
  std::string ident_path = node.data_dir + "/pg_ident.conf";
  auto ident = read_file_nofollow(ident_path);
  if (!ident) return std::unexpected(ident.error());
  if (ident->find(kHbaMarker) != std::string::npos) return {};
  return append(ident_path,
                fmt::format("\n{} root and {} are {}.\n{} {} {}\n{} root {}\n", kHbaMarker,
                            config.os_user, config.superuser, kIdentMap, config.os_user,
                            config.superuser, kIdentMap, config.superuser));
}

Status add_superuser_line(Context& context, const NodeConfig& node) {
  const ClusterConfig& config = context.config;
  if (auto ok = add_ident_map(context, node); !ok) return ok;
  std::string hba_path = node.data_dir + "/pg_hba.conf";
  auto hba = read_file_nofollow(hba_path);
  if (!hba) return std::unexpected(hba.error());
  if (hba->find(kHbaMarker) != std::string::npos) return {};
  std::string line = fmt::format("local all {} peer map={}", config.superuser, kIdentMap);
  std::string block = fmt::format("{} its agents connect as {} over the socket.\n{}\n\n",
                                  kHbaMarker, config.superuser, line);
  if (auto ok = write_owned_file(hba_path, block + *hba, context.os_user, 0600); !ok) return ok;
  context.report(
      fmt::format("{}: the superuser could not connect as tandem does: added \"{}\" "
                  "first in pg_hba.conf, and map {} to pg_ident.conf",
                  node.name, line, kIdentMap));
  return {};
}

Result<Connection> connect_adding_hba(Context& context, const NodeConfig& node,
                                      const ServerFacts& server) {
  auto connection = connect_now(context, node, server);
  if (connection) return connection;
  if (connection.error().code != ErrorCode::kPermissionDenied) return connection;
  if (auto ok = add_superuser_line(context, node); !ok) return std::unexpected(ok.error());
  if (auto ok = context.controller.reload(node); !ok) return std::unexpected(ok.error());
  return connect_now(context, node, server);
}

// primary_conninfo and primary_slot_name out of postgresql.auto.conf (pg_basebackup -R put them
// there; on a former standby promoted by hand they linger), where they would beat tandem.conf;
// the file as it was kept beside it first.
Status reset_upstream(Context& context, const NodeConfig& node, Connection& connection) {
  std::string path = node.data_dir + "/postgresql.auto.conf";
  auto text = read_file_nofollow(path);
  if (!text) return std::unexpected(text.error());
  if (text->find("primary_conninfo") == std::string::npos &&
      text->find("primary_slot_name") == std::string::npos) {
    return {};
  }
  std::string kept = path + ".before-tandem";
  std::error_code error;
  if (!std::filesystem::exists(kept, error)) {
    if (auto ok = write_owned_file(kept, *text, context.os_user, 0600); !ok) return ok;
  }
  if (auto ok = reset_upstream_settings(connection); !ok) return ok;
  context.report(
      fmt::format("{}: primary_conninfo and primary_slot_name moved out of "
                  "postgresql.auto.conf (as it was: {})",
                  node.name, kept));
  return {};
}

// tandem.conf (with the standby's upstream), included last; primary_conninfo and
// primary_slot_name out of postgresql.auto.conf; reloaded.
Status prepare_node(Context& context, const NodeConfig& node, const ServerFacts& server,
                    const NodeConfig& primary) {
  auto connection = connect_adding_hba(context, node, server);
  if (!connection) return std::unexpected(connection.error());
  auto in_recovery = is_in_recovery(*connection);
  if (!in_recovery) return std::unexpected(in_recovery.error());
  bool standby = node.name != primary.name;
  if (*in_recovery != standby) {
    return fail(ErrorCode::kConflict,
                fmt::format("{} changed role since it was read: run adopt again", node.name));
  }
  if (auto ok =
          write_node_files(context.config, context.os_user, node, standby ? &primary : nullptr);
      !ok) {
    return ok;
  }
  if (auto ok = include_tandem_conf(context, node); !ok) return ok;
  if (auto ok = reset_upstream(context, node, *connection); !ok) return ok;
  if (standby) {
    context.report(fmt::format("{}: streams from {} as tandem says in {} (slot {})", node.name,
                               primary.name, kTandemConfName, node.name));
  }
  return context.controller.reload(node);
}

// Before any standby is pointed anew: its slot on the primary (a standby without one, or renamed,
// gets one of its node's name) and the replication role's login as tandem's primary_conninfo
// makes it (tandem's password file).
Status check_replication(Context& context, const NodeConfig& primary, const ServerFacts& server) {
  auto connection = connect_adding_hba(context, primary, server);
  if (!connection) return std::unexpected(connection.error());
  for (const NodeConfig& node : context.config.nodes) {
    if (node.name == primary.name) continue;
    auto created = ensure_slot(*connection, node.name);
    if (!created) return fail_with_context(created.error(), "the slot of " + node.name);
    if (*created) {
      context.report(fmt::format("{}: created slot {} on {}", node.name, node.name, primary.name));
    }
  }
  // postgresql.tls is switched on by the adoption itself (tandem.conf, after this check, which
  // must change nothing when it refuses): the password is checked over what the server serves
  // now, TLS if it already does (libpq's sslmode=prefer).
  ClusterConfig as_served = context.config;
  as_served.tls = {};
  if (auto ok = check_replication_login(as_served, primary); !ok) {
    return fail_with_context(
        ok.error(), fmt::format("{} cannot log in for replication as tandem would (with "
                                "{}): no standby was changed",
                                context.config.replication.user, context.config.password_file));
  }
  return {};
}

// The primary's agent holds the lease (renewed: its TTL runs) and says it runs a primary.
bool agent_leads(Context& context, const NodeConfig& primary) {
  auto store = open_cluster_store(context.config, context.clock);
  if (!store) return false;
  ClusterLayout layout(context.config.name);
  auto snapshot = (*store)->read(layout.prefix());
  if (!snapshot) return false;
  ClusterView view = layout.view(*snapshot);
  auto member = view.members.find(primary.name);
  return view.leader_is(primary.name) && member != view.members.end() &&
         member->second.state == PgState::kPrimary;
}

bool streams_from(const Context& context, const NodeConfig& node, const ServerFacts& server,
                  const NodeConfig& primary) {
  auto connection = connect_now(context, node, server);
  if (!connection) connection = connect_local_admin(context.config, node);
  if (!connection) return false;
  auto position = standby_position(*connection);
  return position && position->sender_port == primary.port;
}

Status wait_streaming(Context& context, const NodeConfig& node, const ServerFacts& server,
                      const NodeConfig& primary) {
  if (poll_until(context.clock, context.streaming_timeout, std::chrono::milliseconds(100),
                 [&] { return streams_from(context, node, server, primary); })) {
    return {};
  }
  return fail(ErrorCode::kTimeout,
              fmt::format("{} does not stream from {} after {} s", node.name, primary.name,
                          context.streaming_timeout.count() / 1000));
}

Result<std::vector<std::string>> waiting_for_restart(const Context& context, const NodeConfig& node,
                                                     const ServerFacts& server) {
  auto connection = connect_now(context, node, server);
  if (!connection) connection = connect_local_admin(context.config, node);
  if (!connection) return std::unexpected(connection.error());
  return pending_restart(*connection);
}

// A node whose agent has taken it over: the agent restarts a postmaster it did not start (one
// that would not die with it), so tandem's settings apply, and the node is back in its role.
Status wait_taken_over(Context& context, const NodeConfig& node, const ServerFacts& server,
                       const NodeConfig& primary) {
  std::string waiting_for = "its agent to restart it";
  bool done =
      poll_until(context.clock, std::chrono::minutes(2), std::chrono::milliseconds(100), [&] {
        auto pending = waiting_for_restart(context, node, server);
        if (!pending || !pending->empty()) return false;
        if (node.name == primary.name) {
          auto connection = connect_local_admin(context.config, node);
          waiting_for = "it to accept writes, its agent leading";
          return connection && check_writable(*connection).has_value() &&
                 agent_leads(context, node);
        }
        waiting_for = "it to stream from " + primary.name;
        return streams_from(context, node, server, primary);
      });
  if (!done) {
    return fail(ErrorCode::kTimeout,
                fmt::format("{}: still waiting for {} after 2 minutes (see {}/{}.agent.log)",
                            node.name, waiting_for, context.config.log_dir, node.name));
  }
  return {};
}

// The store learns of the cluster: initialised by its primary, which holds the lease (without
// a TTL until its agent renews it, so that the primary is not fenced before its agent starts),
// on the timeline it runs. Nothing is overwritten: an adoption resumed finds them there.
Status record_in_store(Context& context, const NodeConfig& primary, const ServerFacts& server) {
  auto store = open_cluster_store(context.config, context.clock);
  if (!store) return std::unexpected(store.error());
  ClusterLayout layout(context.config.name);
  // The lease and the claim first, `initialize` last (the mark a second run reads): a run that
  // stops in between finds the cluster not adopted and writes them again (create-if-absent),
  // and no agent starts before the lease names the primary. On several machines the mark that
  // it is being adopted comes before them all (see ClusterView::adopting).
  std::vector<std::pair<std::string, std::string>> keys = {
      {layout.leader(), primary.name},
      {layout.timeline(), encode_timeline_claim(server.timeline, primary.name)},
      {layout.initialize(), primary.name}};
  if (context.config.on_several_machines()) {
    keys.insert(keys.begin(), {layout.adopting(), primary.name});
  }
  // Synchronous mode: the primary has every commit acknowledged so far (before adoption every
  // one was its own), and no standby is synchronous yet. Without this record nobody — the
  // primary included, once it lost its lease — could ever lead (found by the simulation).
  if (context.config.ha.synchronous_mode) {
    keys.insert(keys.end() - 1, {layout.sync(), encode_sync(primary.name, {})});
  }
  for (const auto& [key, value] : keys) {
    auto written = (*store)->create(key, value, std::nullopt);
    if (written) continue;
    if (written.error().code != ErrorCode::kConflict) return std::unexpected(written.error());
    // There already: a run stopped half-way wrote it — the same, unless that run named another
    // primary (the timeline claim's revision part differs: its number was read from the data).
    if (key == layout.timeline()) continue;
    auto stored = (*store)->read(key);
    if (!stored) return std::unexpected(stored.error());
    const StoredValue* found = stored->find(key);
    if (found != nullptr && found->value != value) {
      return fail(ErrorCode::kConflict,
                  fmt::format("the store's {} says {}, not {}: another adoption or cluster wrote "
                              "it",
                              key, found->value, value));
    }
  }
  std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         context.clock.wall_now().time_since_epoch())
                         .count();
  auto written = (*store)->put(
      layout.history(now),
      encode_history({.time_ms = now,
                      .to = primary.name,
                      .timeline = server.timeline,
                      .reason = "adopted by tandem: a running primary and its standbys"}),
      std::nullopt);
  if (!written) return std::unexpected(written.error());
  context.report(
      fmt::format("the store ({}) knows the cluster: {} leads on timeline {}",
                  context.config.on_several_machines() ? "etcd" : context.config.store_file,
                  primary.name, server.timeline));
  return {};
}

// One node at a time, never two down at once: the standbys first, each streaming again before
// the next; then the primary, restarted in place by its agent (writes wait for that restart
// alone: a checkpoint first leaves its shutdown little to write).
Status start_agents(Context& context, const std::string& config_path,
                    const std::vector<ServerFacts>& servers, const NodeConfig& primary) {
  const ClusterConfig& config = context.config;
  const ServerFacts* primary_facts = nullptr;
  for (std::size_t index = 0; index < config.nodes.size(); ++index) {
    const NodeConfig& node = config.nodes[index];
    if (node.name == primary.name) {
      primary_facts = &servers[index];
      continue;
    }
    if (running_agent(config, node)) continue;
    if (auto ok = start_agent(context, config_path, node); !ok) return ok;
    if (auto ok = wait_taken_over(context, node, servers[index], primary); !ok) return ok;
    context.report(
        fmt::format("{}: its agent restarted it with tandem's settings; it streams "
                    "from {}",
                    node.name, primary.name));
  }
  if (!running_agent(config, primary)) {
    if (auto connection = connect_now(context, primary, *primary_facts)) {
      (void)checkpoint(*connection);
    }
    auto started = context.clock.steady_now();
    if (auto ok = start_agent(context, config_path, primary); !ok) return ok;
    if (auto ok = wait_taken_over(context, primary, *primary_facts, primary); !ok) return ok;
    context.report(fmt::format(
        "{}: its agent restarted it in place with tandem's settings; it accepts writes again "
        "({} ms after its agent started)",
        primary.name,
        std::chrono::duration_cast<std::chrono::milliseconds>(context.clock.steady_now() - started)
            .count()));
  }
  return wait_cluster_ready(context, std::chrono::minutes(3));
}

Result<bool> adopted_already(Context& context) {
  auto store = open_cluster_store(context.config, context.clock);
  if (!store) return std::unexpected(store.error());
  ClusterLayout layout(context.config.name);
  auto snapshot = (*store)->read(layout.initialize());
  if (!snapshot) return std::unexpected(snapshot.error());
  return snapshot->find(layout.initialize()) != nullptr;
}

// ---- Several machines: `tandem adopt --node NAME` on each node's own host ----

// tandem's lines first in pg_hba.conf for nodes on several machines: the superuser over the
// socket (peer, through the ident map), and from the nodes' networks the replication role and
// the superuser with their passwords — md5 for a role whose password is stored as md5 (the
// scram-sha-256 method would refuse it), scram-sha-256 otherwise. The user's lines are kept
// after them.
Status add_hosts_hba(Context& context, const NodeConfig& node, Connection& connection) {
  const ClusterConfig& config = context.config;
  std::string hba_path = node.data_dir + "/pg_hba.conf";
  auto hba = read_file_nofollow(hba_path);
  if (!hba) return std::unexpected(hba.error());
  if (hba->find(kHostsHbaMarker) != std::string::npos) return {};
  if (auto ok = add_ident_map(context, node); !ok) return ok;
  std::map<std::string, std::string> methods;
  for (const std::string& role : {config.replication.user, config.superuser}) {
    auto kind = password_kind(connection, role);
    if (!kind) return std::unexpected(kind.error());
    methods[role] = *kind == PasswordKind::kMd5 ? "md5" : "scram-sha-256";
  }
  std::string lines = fmt::format("local all {} peer map={}\n", config.superuser, kIdentMap);
  for (const std::string& network : config.replication.networks) {
    lines += fmt::format("host replication {} {} {}\n", config.replication.user, network,
                         methods[config.replication.user]);
  }
  for (const std::string& network : config.replication.networks) {
    lines +=
        fmt::format("host all {} {} {}\n", config.superuser, network, methods[config.superuser]);
  }
  std::string block = fmt::format(
      "{} its agents connect as {} over the socket; between the nodes, {} and {} with the "
      "passwords of tandem's password file.\n{}\n",
      kHostsHbaMarker, config.superuser, config.replication.user, config.superuser, lines);
  if (auto ok = write_owned_file(hba_path, block + *hba, context.os_user, 0600); !ok) return ok;
  context.report(fmt::format(
      "{}: pg_hba.conf starts with tandem's lines (yours kept after them): {} over the socket, "
      "{} ({}) and {} ({}) from {}",
      node.name, config.superuser, config.replication.user, methods[config.replication.user],
      config.superuser, methods[config.superuser], fmt::join(config.replication.networks, ", ")));
  return context.controller.reload(node);
}

// The superuser's password, which the agents of the other hosts log in with: the one in the
// password file; on the primary set from it, or made and kept there first, when the role has
// none. A password the file does not hold is never replaced.
Status ensure_superuser_password(Context& context, Connection& connection, bool primary) {
  const ClusterConfig& config = context.config;
  auto known =
      find_password(read_password_file(config.password_file).value_or(""), config.superuser);
  auto kind = password_kind(connection, config.superuser);
  if (!kind) return std::unexpected(kind.error());
  if (known && *kind != PasswordKind::kNone) return {};  // tried by logging in over TCP
  if (*kind != PasswordKind::kNone) {
    return fail(ErrorCode::kConflict,
                fmt::format("the superuser {} has a password that {} does not hold: add the line "
                            "*:*:*:{}:PASSWORD to it (mode 0600, the same file on every host)",
                            config.superuser, config.password_file, config.superuser));
  }
  if (!primary) {
    return fail(ErrorCode::kConflict,
                fmt::format("the superuser {} has no password yet: adopt the primary's node "
                            "first (it sets one)",
                            config.superuser));
  }
  std::string password;
  if (known) {
    password = *known;
  } else {
    auto made = random_password();
    if (!made) return std::unexpected(made.error());
    password = *made;
    // Kept before it is set: an adoption interrupted in between sets the same one again.
    if (auto ok = add_password(context, config.superuser, password); !ok) return ok;
  }
  auto verifier = connection.encrypt_password(password, config.superuser);
  if (!verifier) return std::unexpected(verifier.error());
  if (auto ok = set_role_password(connection, config.superuser, *verifier); !ok) return ok;
  context.report(fmt::format(
      "the superuser {} had no password: set the one in {}{} (the agents of the other hosts log "
      "in with it)",
      config.superuser, config.password_file,
      known ? "" : ", made now: copy that file to every host before adopting its node"));
  return {};
}

// The state the node's agent publishes in the store, if it does.
std::optional<PgState> published_state(Context& context, const std::string& name) {
  auto store = open_cluster_store(context.config, context.clock);
  if (!store) return std::nullopt;
  ClusterLayout layout(context.config.name);
  auto snapshot = (*store)->read(layout.prefix());
  if (!snapshot) return std::nullopt;
  ClusterView view = layout.view(*snapshot);
  auto member = view.members.find(name);
  if (member == view.members.end()) return std::nullopt;
  return member->second.state;
}

// A standby adopted on its own host, seen from the primary's: its agent publishes it as a
// standby, and over TCP (as the agents reach each other) it streams from `primary` with
// tandem's settings in force (none waits for a restart).
bool adopted_standby(Context& context, const NodeConfig& node, const NodeConfig& primary) {
  if (published_state(context, node.name) != PgState::kStandby) return false;
  auto connection = connect_admin(context.config, node);
  if (!connection) return false;
  auto pending = pending_restart(*connection);
  auto position = standby_position(*connection);
  return pending && pending->empty() && position && position->sender_port == primary.port;
}

// The turn to have a node restarted (adopt_turn, with a TTL: an adoption killed meanwhile does
// not keep it): taken when free or ours already, waited for while another host's has it.
constexpr std::chrono::minutes kTurnTtl{3};

Status take_turn(Context& context, Store& store, const std::string& name) {
  ClusterLayout layout(context.config.name);
  std::string key = layout.adopt_turn();
  std::string holder;
  bool taken =
      poll_until(context.clock, std::chrono::minutes(10), std::chrono::milliseconds(200), [&] {
        if (store.create(key, name, kTurnTtl)) return true;
        auto snapshot = store.read(key);
        const StoredValue* held = snapshot ? snapshot->find(key) : nullptr;
        if (held != nullptr && held->value == name) {
          return store.put(key, name, kTurnTtl).has_value();
        }
        if (held != nullptr && holder != held->value) {
          holder = held->value;
          context.report(
              fmt::format("{}: waiting while {}'s agent restarts it (never two nodes "
                          "down at once)",
                          name, holder));
        }
        return false;
      });
  if (!taken) {
    return fail(ErrorCode::kTimeout,
                fmt::format("{} waited 10 minutes for {}'s restart to end", name, holder));
  }
  return {};
}

void give_turn_back(Context& context, Store& store, const std::string& name) {
  ClusterLayout layout(context.config.name);
  std::string key = layout.adopt_turn();
  auto snapshot = store.read(key);
  const StoredValue* held = snapshot ? snapshot->find(key) : nullptr;
  if (held != nullptr && held->value == name) (void)store.remove(key, held->mod_revision);
}

// `node`'s agent started, in its turn, and seen to have restarted it in its role.
Status restart_by_agent(Context& context, const std::string& config_path, const NodeConfig& node,
                        const ServerFacts& server, const NodeConfig& primary) {
  auto store = open_cluster_store(context.config, context.clock);
  if (!store) return std::unexpected(store.error());
  if (auto ok = take_turn(context, **store, node.name); !ok) return ok;
  if (node.name == primary.name) {
    if (auto connection = connect_now(context, node, server)) (void)checkpoint(*connection);
  }
  if (auto ok = ensure_owned_dir(context.config.log_dir, context.os_user, 0755); !ok) {
    give_turn_back(context, **store, node.name);
    return ok;
  }
  auto started = context.clock.steady_now();
  Status done = start_agent(context, config_path, node);
  if (done) done = wait_taken_over(context, node, server, primary);
  give_turn_back(context, **store, node.name);
  if (!done) return done;
  context.report(fmt::format(
      "{}: its agent restarted it with tandem's settings; {} ({} ms after its agent started)",
      node.name,
      node.name == primary.name ? "it accepts writes again" : "it streams from " + primary.name,
      std::chrono::duration_cast<std::chrono::milliseconds>(context.clock.steady_now() - started)
          .count()));
  return {};
}

// The primary's host, once the store knows the cluster: every standby adopted on its own host
// (waited for, up to 10 minutes, saying how), then the primary restarted in place by its agent.
Status finish_primary(Context& context, const std::string& config_path, const NodeConfig& node,
                      const ServerFacts& server) {
  const ClusterConfig& config = context.config;
  if (!running_agent(config, node)) {
    std::set<std::string> said;
    bool all =
        poll_until(context.clock, std::chrono::minutes(10), std::chrono::milliseconds(500), [&] {
          bool done = true;
          for (const NodeConfig& other : config.nodes) {
            if (other.name == node.name || adopted_standby(context, other, node)) {
              continue;
            }
            done = false;
            if (said.insert(other.name).second) {
              context.report(
                  fmt::format("waiting for {} to be adopted on its host ({}): tandem -c "
                              "{} adopt --node {}",
                              other.name, other.host, config_path, other.name));
            }
          }
          return done;
        });
    if (!all) {
      return fail(ErrorCode::kTimeout,
                  "the standbys were not all adopted within 10 minutes: adopt each on its host, "
                  "then run this again");
    }
    if (auto ok = restart_by_agent(context, config_path, node, server, node); !ok) return ok;
  } else if (auto ok = wait_taken_over(context, node, server, node); !ok) {
    return ok;
  }
  // Its agent removes the mark once it renews with the postmaster it started under its watchdog
  // (decide's end_adoption): from then on the standbys may prove it fenced again.
  ClusterLayout layout(config.name);
  bool marked = true;
  bool gone =
      poll_until(context.clock, std::chrono::minutes(2), std::chrono::milliseconds(100), [&] {
        auto store = open_cluster_store(config, context.clock);
        if (!store) return false;
        auto mark = (*store)->read(layout.adopting());
        marked = !mark || mark->find(layout.adopting()) != nullptr;
        return !marked;
      });
  if (!gone) {
    return fail(ErrorCode::kTimeout,
                fmt::format("{}'s agent has not taken it over after 2 minutes (the store's "
                            "adopting mark is still there; see {}/{}.agent.log)",
                            node.name, config.log_dir, node.name));
  }
  context.report(
      fmt::format("{} is adopted: its agent runs it under its watchdog; the agents may "
                  "fail it over from now on",
                  node.name));
  return wait_cluster_ready(context, std::chrono::minutes(3));
}

Status adopt_primary_node(Context& context, const std::string& config_path, const NodeConfig& node,
                          const ServerFacts& server) {
  const ClusterConfig& config = context.config;
  if (auto ok = write_passwords(context, std::nullopt); !ok) return ok;
  auto connection = connect_adding_hba(context, node, server);
  if (!connection) return std::unexpected(connection.error());
  // tandem's lines ask for the replication role's password: one without any (trust, cert)
  // would be refused from then on.
  auto replication_kind = password_kind(*connection, config.replication.user);
  if (!replication_kind) return std::unexpected(replication_kind.error());
  if (*replication_kind == PasswordKind::kNone) {
    return fail(ErrorCode::kConflict,
                fmt::format("{} has no password (the standbys log in without one): give it one "
                            "and put it in {}; pg_hba.conf not changed",
                            config.replication.user, config.password_file));
  }
  if (auto ok = add_hosts_hba(context, node, *connection); !ok) return ok;
  if (auto ok = ensure_superuser_password(context, *connection, true); !ok) return ok;
  if (auto ok = check_replication(context, node, server); !ok) return ok;
  if (auto ok = prepare_node(context, node, server, node); !ok) return ok;
  if (auto admin = connect_admin(config, node); !admin) {
    return fail_with_context(admin.error(), fmt::format("the superuser cannot log in to {} over "
                                                        "TCP as the other hosts' agents will",
                                                        node.name));
  }
  if (auto ok = record_in_store(context, node, server); !ok) return ok;
  context.report(
      fmt::format("every host needs {} and {} as they are here: copy them before "
                  "adopting its node",
                  config.password_file, config.api.token_file));
  return finish_primary(context, config_path, node, server);
}

Status adopt_standby_node(Context& context, const std::string& config_path, const NodeConfig& node,
                          const ServerFacts& server, const NodeAdoption& adoption,
                          const NodeConfig& upstream) {
  if (auto ok = write_passwords(context, adoption.replication_password); !ok) return ok;
  auto connection = connect_adding_hba(context, node, server);
  if (!connection) return std::unexpected(connection.error());
  if (auto ok = ensure_superuser_password(context, *connection, false); !ok) return ok;
  if (auto ok = add_hosts_hba(context, node, *connection); !ok) return ok;
  if (auto ok = prepare_node(context, node, server, upstream); !ok) return ok;
  if (auto ok = wait_streaming(context, node, server, upstream); !ok) return ok;
  return restart_by_agent(context, config_path, node, server, upstream);
}

}  // namespace

Status adopt_servers(Context& context, const std::string& config_path, const AdoptionPlan& plan,
                     const std::vector<ServerFacts>& servers) {
  const ClusterConfig& config = context.config;
  auto primary = config.node(plan.primary);
  if (!primary) return std::unexpected(primary.error());
  const ServerFacts* primary_facts = nullptr;
  for (std::size_t index = 0; index < config.nodes.size(); ++index) {
    if (config.nodes[index].name == plan.primary) primary_facts = &servers[index];
  }
  auto adopted = adopted_already(context);
  if (!adopted) return std::unexpected(adopted.error());
  if (*adopted) {
    // The store knows the cluster: its agents (started again if an interruption stopped them)
    // own the nodes now; what may be left is the primary's restart.
    context.report("the store knows this cluster already: finishing the adoption");
    return start_agents(context, config_path, servers, **primary);
  }
  if (auto ok = write_passwords(context, plan.replication_password); !ok) return ok;
  if (auto ok = check_replication(context, **primary, *primary_facts); !ok) return ok;
  for (std::size_t index = 0; index < config.nodes.size(); ++index) {
    if (auto ok = prepare_node(context, config.nodes[index], servers[index], **primary); !ok) {
      return ok;
    }
  }
  for (std::size_t index = 0; index < config.nodes.size(); ++index) {
    const NodeConfig& node = config.nodes[index];
    if (node.name == plan.primary) continue;
    if (auto ok = wait_streaming(context, node, servers[index], **primary); !ok) return ok;
  }
  if (auto ok = record_in_store(context, **primary, *primary_facts); !ok) return ok;
  return start_agents(context, config_path, servers, **primary);
}

// A second run (an adoption interrupted) keeps the names and the cluster the first one wrote:
// a standby's slot name, read from postgresql.auto.conf the first time, is no longer there.
Status resume_options(const ClusterConfig& existing, const std::vector<ServerFacts>& servers,
                      AdoptOptions& options, const std::string& path) {
  options.cluster_name = existing.name;
  options.names.clear();
  options.resuming = true;
  for (const ServerFacts& server : servers) {
    const NodeConfig* found = nullptr;
    for (const NodeConfig& node : existing.nodes) {
      std::error_code error;
      if (std::filesystem::weakly_canonical(node.data_dir, error).string() == server.data_dir) {
        found = &node;
      }
    }
    if (found == nullptr) {
      return fail(ErrorCode::kConflict,
                  fmt::format("{} describes another cluster (without {}): adopt into another "
                              "--dir",
                              path, server.data_dir));
    }
    options.names.push_back(found->name);
    if (found->api_port != 0 && options.api_base_port == 0) {
      options.api_base_port = found->api_port - static_cast<int>(options.names.size() - 1);
    }
  }
  if (existing.nodes.size() != servers.size()) {
    return fail(ErrorCode::kConflict,
                fmt::format("{} names {} nodes, and {} data directories were given", path,
                            existing.nodes.size(), servers.size()));
  }
  return {};
}

Result<NodeAdoptionStep> check_node_adoption(Context& context, const std::string& config_path,
                                             const NodeConfig& node, const NodeAdoption& adoption) {
  const ClusterConfig& config = context.config;
  auto store = open_cluster_store(config, context.clock);
  if (!store) return std::unexpected(store.error());
  ClusterLayout layout(config.name);
  auto snapshot = (*store)->read(layout.prefix());
  if (!snapshot) return std::unexpected(snapshot.error());
  const StoredValue* initialized = snapshot->find(layout.initialize());
  const StoredValue* leader = snapshot->find(layout.leader());
  auto read = read_password_file(config.password_file);
  if (!read) return std::unexpected(read.error());
  const std::string& passwords = *read;
  auto refuse = [](std::string why) -> Result<NodeAdoptionStep> {
    return fail(ErrorCode::kConflict, std::move(why));
  };
  if (!adoption.standby) {
    if (initialized != nullptr && initialized->value == node.name) {
      return NodeAdoptionStep::kPrimaryResumed;
    }
    if (initialized != nullptr) {
      return refuse(
          fmt::format("the store knows cluster {} already, made or adopted with {} as "
                      "its primary: {} is not that primary",
                      config.name, initialized->value, node.name));
    }
    if (!find_password(passwords, config.replication.user)) {
      return refuse(
          fmt::format("{} holds no password for {}: add the line *:*:*:{}:PASSWORD to "
                      "it (mode 0600; the standbys' primary_conninfo may show it), the "
                      "same file on every host",
                      config.password_file, config.replication.user, config.replication.user));
    }
    return NodeAdoptionStep::kPrimary;
  }
  auto upstream = config.node(adoption.upstream);
  if (!upstream) return std::unexpected(upstream.error());
  if (initialized == nullptr) {
    return refuse(
        fmt::format("the store does not know cluster {} yet: adopt its primary first, "
                    "on its host ({}): tandem -c {} adopt --node {}",
                    config.name, (*upstream)->host, config_path, adoption.upstream));
  }
  if (running_agent(config, node)) return NodeAdoptionStep::kStandbyResumed;
  if (leader == nullptr || leader->value != adoption.upstream) {
    return refuse(
        fmt::format("{} streams from {}, and {}: adopt it once it streams from the "
                    "leader (tandem rejoin {})",
                    node.name, adoption.upstream,
                    leader == nullptr ? "nobody leads" : leader->value + " leads", node.name));
  }
  if (!adoption.replication_password && !find_password(passwords, config.replication.user)) {
    return refuse(fmt::format(
        "{}'s primary_conninfo holds no password and {} none for {}: add "
        "the line *:*:*:{}:PASSWORD to it (mode 0600)",
        node.name, config.password_file, config.replication.user, config.replication.user));
  }
  std::error_code error;
  if (!std::filesystem::exists(config.api.token_file, error)) {
    return refuse(
        fmt::format("there is no API token ({}) on this host: copy it from {}'s host, "
                    "with the password file (the agents ping each other with it)",
                    config.api.token_file, adoption.upstream));
  }
  if (!find_password(passwords, config.superuser)) {
    return refuse(
        fmt::format("{} holds no password for the superuser {}: copy it from {}'s "
                    "host, where adopting the primary wrote it (the same file on every "
                    "host)",
                    config.password_file, config.superuser, adoption.upstream));
  }
  return NodeAdoptionStep::kStandby;
}

Status adopt_node(Context& context, const std::string& config_path, const NodeConfig& node,
                  const ServerFacts& server, const NodeAdoption& adoption, NodeAdoptionStep step) {
  switch (step) {
    case NodeAdoptionStep::kPrimary:
      return adopt_primary_node(context, config_path, node, server);
    case NodeAdoptionStep::kPrimaryResumed:
      context.report("the store knows this cluster already: finishing the adoption");
      return finish_primary(context, config_path, node, server);
    case NodeAdoptionStep::kStandby:
    case NodeAdoptionStep::kStandbyResumed: {
      auto upstream = context.config.node(adoption.upstream);
      if (!upstream) return std::unexpected(upstream.error());
      if (step == NodeAdoptionStep::kStandby) {
        return adopt_standby_node(context, config_path, node, server, adoption, **upstream);
      }
      context.report(fmt::format("{}'s agent runs already: finishing the adoption", node.name));
      return wait_taken_over(context, node, server, **upstream);
    }
  }
  return {};
}

Status write_adopted_config(const ClusterConfig& config, const std::string& dir,
                            const std::string& path) {
  std::error_code error;
  auto os_user = lookup_os_user(config.os_user);
  if (!os_user) return std::unexpected(os_user.error());
  // Root runs what the config names: only root may change it, or the directory it is in.
  OsUser owner = running_as_root() ? OsUser{"root", 0, 0, "/root"} : *os_user;
  if (auto ok = ensure_owned_dir(dir, owner, 0755); !ok) return ok;
  if (auto ok = check_private_dir(dir, *os_user); !ok) return ok;
  if (auto ok = ensure_owned_dir(config.log_dir, *os_user, 0755); !ok) return ok;
  if (std::filesystem::exists(path, error)) return {};
  return write_owned_file(path, render_config(config), owner, 0644);
}

}  // namespace tandem
