#include "agent/backup_runner.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "common/clock.h"
#include "dcs/cluster_layout.h"
#include "ops/backup.h"
#include "proc/process_runner.h"

namespace tandem {

struct BackupRunner::Shared {
  ClusterConfig config;
  std::string self;
  std::unique_ptr<Store> store;
  SystemProcessRunner runner;
  SystemClock clock;
  std::atomic<bool> running{false};

  std::int64_t now_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               clock.wall_now().time_since_epoch())
        .count();
  }
  void record(const ScheduledBackup& backup, const std::string& state, std::int64_t last_full) {
    ClusterLayout layout(config.name);
    BackupRecord record{.slot = backup.slot,
                        .state = state,
                        .by = self,
                        .type = backup.type,
                        .at_ms = now_ms(),
                        .last_full_ms = last_full};
    if (auto ok = store->put(layout.backup(), encode_backup_record(record), std::nullopt); !ok) {
      spdlog::warn("scheduled backup: the store's record not written: {}", ok.error().message);
    }
  }
  void take(const ScheduledBackup& backup) {
    const NodeConfig* primary = config.find_node(self);
    const NodeConfig* standby = backup.from.empty() ? nullptr : config.find_node(backup.from);
    auto type = parse_backup_type(backup.type);
    if (primary == nullptr || !type) return;
    auto started = clock.steady_now();
    spdlog::info("scheduled backup ({}) of slot {} from {}: started", backup.type, backup.slot,
                 standby != nullptr ? standby->name : self);
    BackRest backrest(config, runner);
    Status done = backrest.backup(*primary, standby, *type);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(clock.steady_now() - started);
    if (done) {
      spdlog::info("scheduled backup ({}) of slot {}: done in {} ms", backup.type, backup.slot,
                   took.count());
      record(backup, "done", backup.type == "full" ? now_ms() : backup.last_full_ms);
    } else {
      spdlog::error("scheduled backup ({}) of slot {} failed, tried again in {} s: {}", backup.type,
                    backup.slot, kBackupRetry.count(), done.error().message);
      record(backup, "failed", backup.last_full_ms);
    }
  }
};

BackupRunner::BackupRunner(ClusterConfig config, std::string self, std::unique_ptr<Store> store)
    : shared_(std::make_shared<Shared>()) {
  shared_->config = std::move(config);
  shared_->self = std::move(self);
  shared_->store = std::move(store);
}

BackupRunner::~BackupRunner() {
  if (shared_->running.load()) {
    spdlog::info("scheduled backup still under way: left to finish (or end with this process)");
  }
}

bool BackupRunner::running() const { return shared_->running.load(); }

void BackupRunner::start(const ScheduledBackup& backup) {
  if (shared_->running.exchange(true)) return;
  shared_->record(backup, "running", backup.last_full_ms);
  std::thread([shared = shared_, backup] {
    shared->take(backup);
    shared->running = false;
  }).detach();
}

}  // namespace tandem
