// tandem agent --node NAME: run the agent of one node until SIGTERM or SIGINT.
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "agent/agent.h"
#include "agent/peer_pinger.h"
#include "agent/peer_waker.h"
#include "agent/pg_local_node.h"
#include "api/http_api.h"
#include "cli/commands.h"
#include "core/member_change.h"
#include "dcs/cluster_layout.h"
#include "local/local_agents.h"
#include "ops/backup.h"
#include "ops/store_access.h"
#include "pg/server_files.h"
#include "proc/heap.h"
#include "proc/safe_file.h"
#include "proc/supervised_process.h"

namespace tandem {
namespace {

std::atomic<bool> stop_requested{false};
// SIGHUP (systemctl reload, `tandem reload`): tandem.yaml read again between two cycles.
std::atomic<bool> reload_requested{false};

// The board's eventfd while the agent runs (-1 otherwise): a signal may reach another thread
// than the one asleep at rest, and must end that sleep (write() is async-signal-safe).
std::atomic<int> wake_fd{-1};

void wake_agent_from_signal() {
  int fd = wake_fd.load();
  std::uint64_t one = 1;
  if (fd >= 0) (void)!write(fd, &one, sizeof one);
}

void request_stop(int) {
  stop_requested.store(true);
  wake_agent_from_signal();
}
void request_reload(int) {
  reload_requested.store(true);
  wake_agent_from_signal();
}

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: the agent's wait returns at once
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  struct sigaction hangup {};
  hangup.sa_handler = request_reload;
  sigemptyset(&hangup.sa_mask);
  hangup.sa_flags = SA_RESTART;
  sigaction(SIGHUP, &hangup, nullptr);
}

// What one agent process holds besides the Session, in the order it is built (and destroyed
// in reverse): the cycle's store connection, the watchdog, the lease keeper's store connection,
// quorum fencing's contact book and pinger, the node, the board, the agent, then the API.
struct AgentProcess {
  // The config the node and the agent are made from (the API keeps a copy): the session's at
  // first, the running one with the new members after a change (see rebuild).
  std::unique_ptr<ClusterConfig> config;
  std::unique_ptr<Store> store;
  std::unique_ptr<FencingWatchdog> watchdog;
  std::unique_ptr<Store> lease_store;
  std::unique_ptr<ContactBook> contacts;
  std::unique_ptr<PeerPinger> pinger;
  std::unique_ptr<HttpPeerWaker> waker;         // one machine: wakes the agent a lease is handed to
  std::unique_ptr<SqliteLockWatch> store_lock;  // one machine: the SQLite store's write lock
  std::unique_ptr<PgLocalNode> local;
  AgentBoard board;
  ServiceNotifier service;                    // systemd's notify socket, when it started the agent
  std::unique_ptr<CallbackRunner> callbacks;  // outlives the agent: runs its last on_stop
  std::unique_ptr<BackupRunner> backups;      // scheduled backups: outlives rebuilds
  // pgBackRest's TLS server for the repository host (backup.repository_host): outlives rebuilds.
  std::unique_ptr<SupervisedProcess> backup_server;
  std::unique_ptr<Agent> agent;
  std::unique_ptr<Store> api_store;
  std::unique_ptr<ApiServer> api;
};

// The store connections, the signal handlers and the watchdog: everything made before the
// first thread starts.
Status open_services(Session& session, const NodeConfig& self, AgentProcess& process) {
  const ClusterConfig& config = *process.config;
  auto store = open_cluster_store(config, session.clock());
  if (!store) return std::unexpected(store.error());
  process.store = std::move(*store);
  // The hard stop of a primary whose right to write lapsed, forked before any thread starts
  // (see fencing_watchdog.h). A cluster of one node has nobody to hand over to.
  if (config.has_watchdog()) {
    // Its own small program (src/watchdog), exec'd by the fork. Where that cannot run, the fork
    // runs the loop itself: its copy of the heap is shared until the agent writes a page again,
    // and then its own, so the smaller the heap it is forked with, the less it keeps.
    auto program = watchdog_program();
    if (!program) {
      spdlog::warn("the watchdog runs as a fork of the agent (about 1 MiB more): {}",
                   program.error().message);
      return_free_heap();
    }
    auto started = FencingWatchdog::start(config.ha.renew_deadline, !config.on_several_machines(),
                                          program.value_or(""));
    if (!started) return std::unexpected(started.error());
    if (program && (*started)->runs() != *program) {
      spdlog::warn("the watchdog runs as {} (about 1 MiB more)", (*started)->runs());
    }
    process.watchdog = std::move(*started);
  }
  // The lease keeper's own store connection: its renewals never wait behind the cycle's reads.
  auto lease_store = open_cluster_store(config, session.clock());
  if (!lease_store) return std::unexpected(lease_store.error());
  process.lease_store = std::move(*lease_store);
  if (!config.on_several_machines()) {
    process.store_lock = std::make_unique<SqliteLockWatch>(config.store_file);
  }
  // Quorum fencing (several machines): the agents ping each other every cycle.
  if (config.on_several_machines()) {
    process.contacts =
        std::make_unique<ContactBook>(self.name, names_of(config), session.clock().steady_now(),
                                      config.member_list, config.previous_members);
    process.pinger = std::make_unique<PeerPinger>(config, self, *process.contacts,
                                                  process.watchdog.get(), session.clock());
  }
  return {};
}

// The agent, complete: its node runs PostgreSQL with the Session's programs, process runner
// and clock.
void build_agent(Session& session, const NodeConfig& self, AgentProcess& process,
                 const AgentCarry* carry) {
  const ClusterConfig& config = *process.config;
  process.local =
      std::make_unique<PgLocalNode>(config, self, session.context().os_user, session.binaries(),
                                    session.runner(), *process.store, session.clock());
  if (!process.callbacks) {
    process.callbacks = std::make_unique<CallbackRunner>(config.callbacks, config.name, self.name,
                                                         session.runner());
  }
  if (!process.backups && config.backup.enabled()) {
    process.backups = std::make_unique<BackupRunner>(config, self.name);
  }
  if (!process.backup_server && config.backup.remote()) {
    process.backup_server = std::make_unique<SupervisedProcess>(
        session.runner(), backrest_server_spec(config, pgbackrest_conf_path(self)),
        "pgBackRest's TLS server");
  }
  // One machine: a standby at rest sleeps until the lease could lapse, and a leader handing it
  // over wakes it through its API (core/observe_rest.h). Several machines: no such rest.
  process.waker.reset();
  if (!config.on_several_machines()) process.waker = std::make_unique<HttpPeerWaker>(config);
  bool wakeable = process.waker && self.api_port != 0;
  process.agent = std::make_unique<Agent>(
      AgentParts{.config = config,
                 .self = self,
                 .node = *process.local,
                 .store = *process.store,
                 .clock = session.clock(),
                 .lease_store = process.lease_store.get(),
                 .watchdog = process.watchdog.get(),
                 .contacts = process.contacts.get(),
                 .board = &process.board,
                 .service = &process.service,
                 .reload_requested = &reload_requested,
                 .read_config = [path = session.config_path()] { return load_config_file(path); },
                 .store_lock = process.store_lock.get(),
                 .callbacks = process.callbacks.get(),
                 .carry = carry,
                 .backups = process.backups.get(),
                 .waker = process.waker.get(),
                 .wakeable = wakeable});
}

// The API has a store connection of its own: its requests never wait behind a cycle.
Status start_api(Session& session, const NodeConfig& self, AgentProcess& process) {
  if (self.api_port == 0) return {};
  if (!process.api_store) {
    auto opened = open_cluster_store(session.config(), session.clock());
    if (!opened) return std::unexpected(opened.error());
    process.api_store = std::move(*opened);
  }
  process.api =
      std::make_unique<ApiServer>(*process.config, self, process.board, *process.api_store,
                                  session.clock(), process.contacts.get());
  return process.api->start();
}

// The members changed (one machine, see ReloadPlan::nodes): the node and the agent are made
// again from the new list between two cycles. What outlives them stays: the store connections,
// the watchdog (still watching), the callbacks' runner, the board, the API (told the new list)
// — and the postmaster, this process's child, which the new node adopts: PostgreSQL is not
// restarted. The lease passes from the old keeper, stopped first, to the new one, which renews
// it on from the same revision.
//
// Several machines: the pinger (its threads read the old list) stops first and starts again on
// the new one; the contact book keeps what the staying peers said and counts over the new list
// from then on.
void rebuild(Session& session, const std::string& name, AgentProcess& process) {
  auto next = std::make_unique<ClusterConfig>(process.agent->rebuild_config());
  bool skipped = next->member_list > process.config->member_list + 1;  // left behind
  AgentCarry carry = process.agent->retire();
  pid_t postmaster = process.local->postmaster();
  process.agent.reset();
  process.local.reset();
  if (process.pinger) process.pinger->stop();
  process.pinger.reset();
  process.config = std::move(next);
  const NodeConfig& self = *process.config->find_node(name);
  if (process.contacts) {
    auto set = skipped ? &ContactBook::start_afresh : &ContactBook::set_members;
    (process.contacts.get()->*set)(names_of(*process.config), process.config->member_list,
                                   session.clock().steady_now(), process.config->previous_members);
    process.pinger = std::make_unique<PeerPinger>(*process.config, self, *process.contacts,
                                                  process.watchdog.get(), session.clock());
  }
  build_agent(session, self, process, &carry);
  process.local->adopt_postmaster(postmaster);
  if (process.api) process.api->set_members(*process.config);
  if (process.pinger) process.pinger->start();
}

// Several machines: an agent whose node is not on the list says it runs none (as a removed
// agent says before it stops): the others end a change on it (previous_list_left), and one
// removed while its agent was down would otherwise hold every change under way for good.
void say_left(Session& session, const ClusterConfig& config, const std::string& node_name) {
  auto store = open_cluster_store(config, session.clock());
  if (!store) return;
  ClusterLayout layout(config.name);
  (void)(*store)->put(layout.list_ack(node_name), encode_list_ack(ack_of(config)), std::nullopt);
}

// Several machines: the member list in the store, once the members changed at run time,
// replaces tandem.yaml's nodes, read before the agent counts over any list (an agent counting
// over the file's older list could be two changes behind the others: core/member_change.h).
// The store out of reach: waited for, said every 10 s; SIGTERM gives up.
Status take_member_list(Session& session, ClusterConfig& config) {
  if (!config.on_several_machines()) return {};
  auto store = open_cluster_store(config, session.clock());
  if (!store) return std::unexpected(store.error());
  ClusterLayout layout(config.name);
  for (int attempt = 0;; ++attempt) {
    auto snapshot = (*store)->read(layout.prefix());
    if (snapshot) {
      ClusterView view = layout.view(*snapshot);
      if (view.member_list) {
        config = with_member_list(config, *view.member_list);
        spdlog::info("member list {} from the store: {}", config.member_list,
                     fmt::join(names_of(config), ", "));
      }
      return {};
    }
    if (stop_requested.load()) return std::unexpected(snapshot.error());
    if (attempt % 10 == 0) {
      spdlog::warn("waiting for the store to read the member list: {}", snapshot.error().message);
    }
    session.clock().sleep_for(std::chrono::seconds(1));
  }
}

Status run_agent(CliState& state, const std::string& node_name) {
  auto session = Session::open(state.options);
  if (!session) return std::unexpected(session.error());
  install_signal_handlers();
  AgentProcess process;
  process.config = std::make_unique<ClusterConfig>((*session)->config());
  const ClusterConfig& config = *process.config;
  if (auto ok = take_member_list(**session, *process.config); !ok) return ok;
  auto node = config.node(node_name);
  if (!node) {
    if (config.member_list == 0) return std::unexpected(node.error());
    say_left(**session, config, node_name);
    return fail(ErrorCode::kNotFound,
                fmt::format("{} is not a member (member list {} in the store: {})", node_name,
                            config.member_list, fmt::join(names_of(config), ", ")));
  }
  const OsUser& os_user = (*session)->context().os_user;
  if (auto ok = ensure_owned_dir(config.socket_dir, os_user, 0755); !ok) return ok;
  if (auto ok = ensure_owned_dir(config.log_dir, os_user, 0755); !ok) return ok;
  auto lock = lock_agent(config, **node, (*session)->clock());
  if (!lock) return std::unexpected(lock.error());
  const NodeConfig& self = **node;
  if (auto ok = open_services(**session, self, process); !ok) return ok;
  build_agent(**session, self, process, nullptr);
  if (auto ok = start_api(**session, self, process); !ok) return ok;
  if (process.pinger) process.pinger->start();
  return_free_heap();  // what start-up dropped: the agent runs for months
  wake_fd.store(process.board.wake_fd());
  while (process.agent->run(stop_requested) == RunEnd::kRebuild) {
    rebuild(**session, node_name, process);
  }
  wake_fd.store(-1);
  if (process.pinger) process.pinger->stop();
  if (process.api) process.api->stop();
  return {};
}

}  // namespace

void add_agent_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand("agent", "Run the agent of one node (automatic failover)");
  auto node = std::make_shared<std::string>();
  command->add_option("--node", *node, "The node this agent runs")->required();
  command->callback(
      [&state, node] { state.after_parse = [&state, node] { return run_agent(state, *node); }; });
}

}  // namespace tandem
