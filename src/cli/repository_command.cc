// tandem repository: run on the repository host (backup.repository_host) until SIGTERM. It
// serves pgBackRest's TLS server to the nodes (their archive-push, archive-get and restores),
// makes the stanza once the primary answers, and takes the scheduled backups (backup.schedule):
// pgBackRest 2.45 takes a backup only where the repository is.
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <thread>

#include "agent/backup_runner.h"
#include "cli/commands.h"
#include "core/backup_schedule.h"
#include "dcs/cluster_layout.h"
#include "ops/backup.h"
#include "ops/store_access.h"
#include "proc/service_notify.h"
#include "proc/supervised_process.h"

namespace tandem {
namespace {

std::atomic<bool> stop_repository{false};

void request_repository_stop(int) { stop_repository.store(true); }

// The leader's view: which node is the primary, which standbys stream from it.
std::optional<ClusterView> read_view(const ClusterConfig& config, Clock& clock) {
  auto store = open_cluster_store(config, clock);
  if (!store) return std::nullopt;
  ClusterLayout layout(config.name);
  auto snapshot = (*store)->read(layout.prefix());
  if (!snapshot) return std::nullopt;
  return layout.view(*snapshot);
}

// The stanza, made from the primary: tried until it is made; a stanza of another database is
// refused by pgBackRest, said once.
class StanzaMaker {
 public:
  void step(const ClusterConfig& config, ProcessRunner& runner, const NodeConfig& primary) {
    if (made_) return;
    auto made = BackRest(config, runner).create_stanza(primary);
    if (made) {
      made_ = true;
      spdlog::info("stanza {} ready in {} (made from {})", config.stanza(),
                   config.backup.repository, primary.name);
    } else if (made.error().message != last_error_) {
      last_error_ = made.error().message;
      spdlog::warn("stanza {} not made yet, tried again every 2 s: {}", config.stanza(),
                   last_error_);
    }
  }

 private:
  bool made_ = false;
  std::string last_error_;
};

// The slot's scheduled backup, when one is due.
void schedule_step(const ClusterConfig& config, const ClusterView& view, const NodeConfig& primary,
                   std::int64_t now_ms, BackupRunner& backups) {
  auto backup =
      plan_scheduled_backup(config.backup.schedule, config.backup.full_every, view, primary.name,
                            now_ms, backups.running(), backups.finished_ms());
  if (!backup) return;
  std::optional<NodeConfig> standby;
  if (const NodeConfig* named = config.find_node(backup->from)) standby = *named;
  backups.start(*backup, primary, standby);
}

Status serve_repository(Session& session) {
  const ClusterConfig& config = session.config();
  Context& context = session.context();
  if (!config.backup.remote()) {
    return fail(ErrorCode::kInvalidArgument,
                "tandem repository runs on a repository host: tandem.yaml names none "
                "(backup.repository_host)");
  }
  if (!on_repository_host(config)) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("this machine does not have backup.repository_host's address {}: "
                            "run tandem repository on the repository host",
                            config.backup.repository_host));
  }
  if (auto ok = check_backup_repository(config, context.os_user); !ok) return ok;
  if (auto ok = write_repository_conf(config, context.os_user); !ok) return ok;
  struct sigaction action {};
  action.sa_handler = request_repository_stop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  SupervisedProcess server(session.runner(),
                           backrest_server_spec(config, repository_conf_path(config)),
                           "pgBackRest's TLS server");
  BackupRunner backups(config, "repository host " + config.backup.repository_host);
  StanzaMaker stanza;
  ServiceNotifier service;
  service.ready(
      fmt::format("repository {} of stanza {}", config.backup.repository, config.stanza()));
  spdlog::info("repository host {}: pgBackRest's TLS server on port {}, repository {}",
               config.backup.repository_host, config.backup.tls_port, config.backup.repository);
  while (!stop_repository.load()) {
    auto view = read_view(config, session.clock());
    const NodeConfig* primary =
        view && view->leader ? config.find_node(view->leader->name) : nullptr;
    if (primary != nullptr) {
      stanza.step(config, session.runner(), *primary);
      if (config.backup.schedule.count() > 0) {
        schedule_step(config, *view, *primary, wall_ms_of(session.clock()), backups);
      }
    }
    for (int tick = 0; tick < 20 && !stop_repository.load(); ++tick) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  service.stopping("stopping");
  spdlog::info("repository host: stopping");
  return {};
}

}  // namespace

void add_repository_command(CLI::App& app, CliState& state) {
  auto* repository = app.add_subcommand(
      "repository",
      "Run the repository host (backup.repository_host) until stopped: pgBackRest's TLS server "
      "for the nodes, the stanza, and the scheduled backups");
  repository->callback([&state] {
    state.result =
        with_session_of(state, [](Session& session) { return serve_repository(session); });
  });
}

}  // namespace tandem
