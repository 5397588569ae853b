#include "agent/backup_runner.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "common/clock.h"
#include "dcs/cluster_layout.h"
#include "ops/backup.h"
#include "ops/store_access.h"
#include "ops/wal_archive.h"
#include "proc/process_runner.h"

namespace tandem {

struct BackupRunner::Shared {
  ClusterConfig config;
  std::string self;
  SystemProcessRunner runner;
  SystemClock clock;
  std::atomic<bool> running{false};
  std::atomic<std::int64_t> finished{0};
  std::optional<std::chrono::steady_clock::time_point> read_tried;  // by read_repository only

  std::int64_t now_ms() const { return wall_ms_of(clock); }
  // The record, by compare-and-set on what it read: never over a later slot's (a leader
  // deposed meanwhile must not undo its successor's), never lowering the last full backup.
  Status record(const ScheduledBackup& backup, const std::string& state, std::int64_t last_full) {
    auto store = open_cluster_store(config, clock);
    if (!store) return std::unexpected(store.error());
    ClusterLayout layout(config.name);
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto snapshot = (*store)->read(layout.backup());
      if (!snapshot) return std::unexpected(snapshot.error());
      const StoredValue* stored = snapshot->find(layout.backup());
      auto before = stored != nullptr ? decode_backup_record(stored->value) : std::nullopt;
      if (before && before->slot_ms > backup.slot_ms) return {};  // a later slot's: kept
      // A busy slot stays busy since its first refusal, through the "running" of each retry.
      bool same_slot = before && before->slot_ms == backup.slot_ms;
      std::int64_t busy_since =
          (state == "busy" || state == "running") && same_slot ? before->busy_since_ms : 0;
      if (state == "busy" && busy_since == 0) busy_since = now_ms();
      BackupRecord record{.slot_ms = backup.slot_ms,
                          .state = state,
                          .by = self,
                          .type = backup.type,
                          .at_ms = now_ms(),
                          .last_full_ms = std::max(last_full, before ? before->last_full_ms : 0),
                          .busy_since_ms = busy_since};
      std::string value = encode_backup_record(record);
      auto written = stored != nullptr
                         ? (*store)->compare_and_set(layout.backup(), value, stored->mod_revision,
                                                     std::nullopt)
                         : (*store)->create(layout.backup(), value, std::nullopt);
      if (written) return {};
      if (written.error().code != ErrorCode::kConflict) return std::unexpected(written.error());
    }
    return fail(ErrorCode::kConflict, "the record kept changing");
  }
  void say(const ScheduledBackup& backup, const std::string& state, std::int64_t last_full) {
    if (auto ok = record(backup, state, last_full); !ok) {
      spdlog::warn("scheduled backup: the store's record ({}) not written: {}", state,
                   ok.error().message);
    }
  }
  // The repository's newest backup to the store (last_backup); said in the log when it fails.
  void read(const NodeConfig& node) {
    BackRest backrest(config, runner);
    auto repository = backrest.info(node);
    if (!repository) {
      spdlog::warn("reading the repository for its last backup: {}", repository.error().message);
      return;
    }
    if (auto ok = record_last_backup(config, clock, last_backup_of(*repository, now_ms())); !ok) {
      spdlog::warn("the store's record of the last backup not written: {}", ok.error().message);
    }
  }
  void take(const ScheduledBackup& backup, const NodeConfig& primary,
            const std::optional<NodeConfig>& standby) {
    auto type = parse_backup_type(backup.type);
    if (!type) return;
    auto started = clock.steady_now();
    spdlog::info("scheduled backup ({}) of the slot from {} ms: started from {}", backup.type,
                 backup.slot_ms, standby ? standby->name : primary.name);
    BackRest backrest(config, runner);
    ProgressSteps steps;
    auto on_progress = [&](const BackupProgress& progress) {
      if (auto step = steps.next(progress)) {
        spdlog::info("scheduled backup ({}) of the slot from {} ms: {}", backup.type,
                     backup.slot_ms, progress_text(*step));
      }
    };
    Status done = checkpoint_after_promotion(config, primary);
    if (done) done = backrest.backup(primary, standby ? &*standby : nullptr, *type, on_progress);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(clock.steady_now() - started);
    if (done) {
      spdlog::info("scheduled backup ({}) of the slot from {} ms: done in {} ms", backup.type,
                   backup.slot_ms, took.count());
      say(backup, "done", backup.type == "full" ? now_ms() : backup.last_full_ms);
      finished = backup.slot_ms;
      read(primary);
    } else {
      bool busy = done.error().code == ErrorCode::kConflict;  // the stanza's lock held
      spdlog::error("scheduled backup ({}) of the slot from {} ms failed, tried again in {} s: {}",
                    backup.type, backup.slot_ms,
                    busy ? kBackupBusyRetry.count() : kBackupRetry.count(), done.error().message);
      say(backup, busy ? "busy" : "failed", backup.last_full_ms);
    }
  }
};

BackupRunner::BackupRunner(ClusterConfig config, std::string self)
    : shared_(std::make_shared<Shared>()) {
  shared_->config = std::move(config);
  shared_->self = std::move(self);
}

BackupRunner::~BackupRunner() {
  if (shared_->running.load()) {
    spdlog::info("scheduled backup still under way: left to finish (or end with this process)");
  }
}

bool BackupRunner::running() const { return shared_->running.load(); }

std::int64_t BackupRunner::finished_ms() const { return shared_->finished.load(); }

void BackupRunner::start(const ScheduledBackup& backup, const NodeConfig& primary,
                         const std::optional<NodeConfig>& standby) {
  if (shared_->running.exchange(true)) return;
  shared_->say(backup, "running", backup.last_full_ms);
  std::thread([shared = shared_, backup, primary, standby] {
    shared->take(backup, primary, standby);
    shared->running = false;
  }).detach();
}

void BackupRunner::mark_received_wal(const NodeConfig& self, const std::string& archived) {
  auto marked = tandem::mark_received_wal(shared_->config, shared_->runner, self, archived);
  if (!marked) {
    spdlog::warn("the WAL received from the old primary is not marked for the archive: {}",
                 marked.error().message);
  } else if (*marked > 0) {
    spdlog::info(
        "{} WAL segment{} received from the old primary marked for the archive before the "
        "promotion (after {}, the last it was seen to archive)",
        *marked, *marked == 1 ? "" : "s", archived.empty() ? "none known" : archived);
  }
}

void BackupRunner::read_repository(const NodeConfig& self) {
  if (shared_->running.load()) return;
  auto now = shared_->clock.steady_now();
  if (shared_->read_tried && now - *shared_->read_tried < std::chrono::minutes(1)) return;
  if (shared_->running.exchange(true)) return;
  shared_->read_tried = now;
  std::thread([shared = shared_, self] {
    shared->read(self);
    shared->running = false;
  }).detach();
}

}  // namespace tandem
