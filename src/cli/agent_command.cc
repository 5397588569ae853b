// tandem agent --node NAME: run the agent of one node until SIGTERM or SIGINT.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>

#include "agent/agent.h"
#include "agent/peer_pinger.h"
#include "agent/pg_local_node.h"
#include "api/http_api.h"
#include "cli/commands.h"
#include "ops/store_access.h"
#include "pg/pg_binaries.h"
#include "proc/safe_file.h"

namespace tandem {
namespace {

std::atomic<bool> stop_requested{false};

void request_stop(int) { stop_requested.store(true); }

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: the agent's wait returns at once
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

// One agent per node: an exclusive lock held for the agent's life.
Result<int> lock_node(const ClusterConfig& config, const NodeConfig& node) {
  std::string path = fmt::format("{}/{}.agent.lock", config.socket_dir, node.name);
  // The socket directory belongs to the OS user: a link planted there is refused, so root
  // never truncates and writes a file of that user's choice.
  auto opened = open_file_nofollow(path, O_RDWR | O_CREAT, 0644);
  if (!opened) return std::unexpected(opened.error());
  int fd = opened->release();
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return fail(ErrorCode::kConflict, fmt::format("an agent of {} already runs", node.name));
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) != 0 || write(fd, pid.data(), pid.size()) < 0) {
    close(fd);
    return fail(ErrorCode::kFailed, fmt::format("cannot write {}", path));
  }
  return fd;
}

Status run_agent(CliState& state, const std::string& node_name) {
  auto session = Session::open(state.options);
  if (!session) return std::unexpected(session.error());
  const ClusterConfig& config = (*session)->config();
  auto node = config.node(node_name);
  if (!node) return std::unexpected(node.error());
  Context& context = (*session)->context();
  if (auto ok = ensure_owned_dir(config.socket_dir, context.os_user, 0755); !ok) return ok;
  if (auto ok = ensure_owned_dir(config.log_dir, context.os_user, 0755); !ok) return ok;
  auto lock = lock_node(config, **node);
  if (!lock) return std::unexpected(lock.error());
  SystemClock clock;
  auto store = open_cluster_store(config, clock);
  if (!store) return std::unexpected(store.error());
  SystemProcessRunner runner;
  auto binaries = find_pg_binaries(config.pg_bin, runner);
  if (!binaries) return std::unexpected(binaries.error());
  install_signal_handlers();
  // The hard stop of a primary whose right to write lapsed, forked before any thread starts
  // (see fencing_watchdog.h). A cluster of one node has nobody to hand over to.
  std::unique_ptr<FencingWatchdog> watchdog;
  if (config.nodes.size() > 1) {
    auto started = FencingWatchdog::start(config.ha.renew_deadline, !config.etcd.enabled());
    if (!started) return std::unexpected(started.error());
    watchdog = std::move(*started);
  }
  // The lease keeper's own store connection: its renewals never wait behind the cycle's reads.
  auto lease_store = open_cluster_store(config, clock);
  if (!lease_store) return std::unexpected(lease_store.error());
  // Quorum fencing (etcd): the agents ping each other every cycle.
  std::unique_ptr<ContactBook> contacts;
  std::unique_ptr<PeerPinger> pinger;
  if (config.etcd.enabled()) {
    std::vector<std::string> members;
    for (const NodeConfig& each : config.nodes) members.push_back(each.name);
    contacts = std::make_unique<ContactBook>((*node)->name, members, clock.steady_now());
    pinger = std::make_unique<PeerPinger>(config, **node, *contacts, watchdog.get(), clock);
  }
  PgLocalNode local(config, **node, context.os_user, *binaries, runner, **store, clock);
  AgentBoard board;
  Agent agent({.config = config,
               .self = **node,
               .node = local,
               .store = **store,
               .clock = clock,
               .lease_store = lease_store->get(),
               .watchdog = watchdog.get(),
               .contacts = contacts.get(),
               .board = &board});
  // The API has a store connection of its own: its requests never wait behind a cycle.
  std::unique_ptr<Store> api_store;
  std::unique_ptr<ApiServer> api;
  if ((*node)->api_port != 0) {
    auto opened = open_cluster_store(config, clock);
    if (!opened) return std::unexpected(opened.error());
    api_store = std::move(*opened);
    api = std::make_unique<ApiServer>(config, **node, board, *api_store, clock, contacts.get());
    if (auto ok = api->start(); !ok) return ok;
  }
  if (pinger) pinger->start();
  agent.run(stop_requested);
  if (pinger) pinger->stop();
  if (api) api->stop();
  return {};
}

}  // namespace

void add_agent_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand("agent", "Run the agent of one node (automatic failover)");
  auto node = std::make_shared<std::string>();
  command->add_option("--node", *node, "The node this agent runs")->required();
  command->callback([&state, node] { state.result = run_agent(state, *node); });
}

}  // namespace tandem
