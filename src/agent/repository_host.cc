#include "agent/repository_host.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <thread>

#include "agent/backup_runner.h"
#include "core/backup_schedule.h"
#include "dcs/cluster_layout.h"
#include "ops/backup.h"
#include "ops/store_access.h"
#include "proc/safe_file.h"
#include "proc/supervised_process.h"

namespace tandem {
namespace {

// One line in the log when `what` changes (a store out of reach, a stanza not made), not one
// per round.
class SaidOnce {
 public:
  void say(const std::string& what) {
    if (what == last_) return;
    last_ = what;
    if (!what.empty()) spdlog::warn("{}", what);
  }

 private:
  std::string last_;
};

// The stanza, made from the primary: tried until it is made, every 2 s at first, then less
// often (each try may wait for an unreachable node's io-timeout); a stanza of another database
// is refused by pgBackRest, said once.
class StanzaMaker {
 public:
  void step(const ClusterConfig& config, ProcessRunner& runner, const NodeConfig& primary,
            std::chrono::steady_clock::time_point now) {
    if (made_ || now < next_try_) return;
    auto made = BackRest(config, runner).create_stanza(primary);
    if (made) {
      made_ = true;
      said_.say("");
      spdlog::info("stanza {} ready in {} (made from {})", config.stanza(),
                   config.backup.repository, primary.name);
      return;
    }
    delay_ = std::min(delay_ * 2, std::chrono::seconds(60));
    next_try_ = now + delay_;
    said_.say(fmt::format("stanza {} not made yet, tried again within {} s: {}", config.stanza(),
                          delay_.count(), made.error().message));
  }

 private:
  bool made_ = false;
  std::chrono::seconds delay_{1};
  std::chrono::steady_clock::time_point next_try_{};
  SaidOnce said_;
};

// One `tandem repository` per machine: an exclusive lock held for its life.
Result<Fd> lock_repository_host(const ClusterConfig& config) {
  std::string path = config.socket_dir + "/repository.lock";
  auto opened = open_file_nofollow(path, O_RDWR | O_CREAT, 0644);
  if (!opened) return std::unexpected(opened.error());
  if (flock(opened->get(), LOCK_EX | LOCK_NB) != 0) {
    return fail(ErrorCode::kConflict,
                fmt::format("another tandem repository runs on this machine ({})", path));
  }
  return opened;
}

}  // namespace

Status run_repository_host(const ClusterConfig& config, const OsUser& os_user,
                           ProcessRunner& runner, Clock& clock, const ServiceNotifier& service,
                           const std::atomic<bool>& stop) {
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
  if (auto ok = check_backup_repository(config, os_user); !ok) return ok;
  // pgBackRest's log and lock directories (log_dir, socket_dir/pgbackrest), the OS user's.
  for (const std::string& dir : {config.log_dir, config.socket_dir}) {
    if (auto ok = ensure_owned_dir(dir, os_user, 0755); !ok) return ok;
  }
  auto lock = lock_repository_host(config);
  if (!lock) return std::unexpected(lock.error());
  if (auto ok = write_repository_conf(config, os_user); !ok) return ok;
  ProcessSpec server_spec = backrest_server_spec(config, repository_conf_path(config));
  server_spec.env.clear();  // it reaches no PostgreSQL here: no password file
  SupervisedProcess server(runner, server_spec, "pgBackRest's TLS server");
  BackupRunner backups(config, "repository host " + config.backup.repository_host);
  StanzaMaker stanza;
  SaidOnce store_problem;
  service.ready(
      fmt::format("repository {} of stanza {}", config.backup.repository, config.stanza()));
  spdlog::info("repository host {}: pgBackRest's TLS server on port {}, repository {}",
               config.backup.repository_host, config.backup.tls_port, config.backup.repository);
  ClusterLayout layout(config.name);
  std::unique_ptr<Store> store;  // opened again after a failed read
  while (!stop.load()) {
    // The leader's view: which node is the primary, which standbys stream from it.
    Result<StoreSnapshot> snapshot = fail(ErrorCode::kUnavailable, "not opened");
    if (!store) {
      auto opened = open_cluster_store(config, clock);
      if (opened) {
        store = std::move(*opened);
      } else {
        snapshot = std::unexpected(opened.error());
      }
    }
    if (store) snapshot = store->read(layout.prefix());
    if (!snapshot) {
      store.reset();
      store_problem.say("the coordination store: " + snapshot.error().message);
    } else {
      store_problem.say("");
      ClusterView view = layout.view(*snapshot);
      const NodeConfig* primary = view.leader ? config.find_node(view.leader->name) : nullptr;
      if (primary != nullptr) {
        stanza.step(config, runner, *primary, clock.steady_now());
        std::optional<ScheduledBackup> backup = plan_scheduled_backup(
            config.backup.schedule, config.backup.full_every, view, primary->name,
            wall_ms_of(clock), backups.running(), backups.finished_ms());
        if (backup) {
          std::optional<NodeConfig> standby;
          if (const NodeConfig* named = config.find_node(backup->from)) standby = *named;
          backups.start(*backup, *primary, standby);
        }
      }
    }
    for (int tick = 0; tick < 20 && !stop.load(); ++tick) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  service.stopping("stopping");
  spdlog::info("repository host: stopping");
  return {};
}

}  // namespace tandem
