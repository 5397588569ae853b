#include "ops/backup.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>

#include "common/clock.h"
#include "core/lsn.h"
#include "dcs/cluster_layout.h"
#include "ops/store_access.h"
#include "pg/admin_connection.h"
#include "pg/node_files.h"
#include "pg/postmaster.h"
#include "pg/server_files.h"
#include "pg/server_queries.h"
#include "proc/ports.h"
#include "proc/safe_file.h"

namespace tandem {
namespace {

using json = nlohmann::json;

std::string text_at(const json& object, const char* key) {
  auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
}

std::int64_t number_at(const json& object, const char* key) {
  auto found = object.find(key);
  return found != object.end() && found->is_number_integer() ? found->get<std::int64_t>() : 0;
}

const json& member(const json& object, const char* key) {
  static const json kEmpty = json::object();
  auto found = object.find(key);
  return found != object.end() && found->is_object() ? *found : kEmpty;
}

BackupSet backup_set(const json& entry) {
  BackupSet set{.label = text_at(entry, "label"), .type = text_at(entry, "type")};
  const json& timestamp = member(entry, "timestamp");
  set.started = number_at(timestamp, "start");
  set.stopped = number_at(timestamp, "stop");
  const json& lsn = member(entry, "lsn");
  set.lsn_start = text_at(lsn, "start");
  set.lsn_stop = text_at(lsn, "stop");
  const json& archive = member(entry, "archive");
  set.wal_start = text_at(archive, "start");
  set.wal_stop = text_at(archive, "stop");
  const json& info = member(entry, "info");
  set.size = number_at(info, "size");
  set.repository_size = number_at(member(info, "repository"), "size");
  set.repository_delta = number_at(member(info, "repository"), "delta");
  auto error = entry.find("error");
  set.error = error != entry.end() && error->is_boolean() && error->get<bool>();
  return set;
}

}  // namespace

Result<RepositoryInfo> parse_backrest_info(std::string_view text, const std::string& stanza) {
  json parsed = json::parse(text, nullptr, false);
  if (!parsed.is_array()) {
    return fail(ErrorCode::kFailed, "pgbackrest info did not print a JSON list of stanzas");
  }
  for (const json& entry : parsed) {
    if (!entry.is_object() || text_at(entry, "name") != stanza) continue;
    RepositoryInfo info;
    const json& status = member(entry, "status");
    info.status_code = static_cast<int>(number_at(status, "code"));
    info.status = text_at(status, "message");
    if (auto backups = entry.find("backup"); backups != entry.end() && backups->is_array()) {
      for (const json& backup : *backups) {
        if (backup.is_object()) info.backups.push_back(backup_set(backup));
      }
    }
    if (auto databases = entry.find("db"); databases != entry.end() && databases->is_array()) {
      for (const json& database : *databases) {
        auto id = database.is_object() ? database.find("system-id") : database.end();
        if (id != database.end() && id->is_number_unsigned()) {
          info.system_ids.push_back(std::to_string(id->get<std::uint64_t>()));
        }
      }
    }
    if (auto archives = entry.find("archive"); archives != entry.end() && archives->is_array()) {
      // One entry per database the stanza has known (an upgrade adds one): the newest last.
      for (const json& archive : *archives) {
        if (!archive.is_object()) continue;
        std::string min = text_at(archive, "min");
        std::string max = text_at(archive, "max");
        if (info.archive_min.empty() && !min.empty()) info.archive_min = min;
        if (!max.empty()) info.archive_max = max;
      }
    }
    return info;
  }
  return fail(ErrorCode::kNotFound,
              fmt::format("pgbackrest info says nothing of stanza {}", stanza));
}

std::optional<BackupProgress> parse_backup_progress(std::string_view line) {
  using Phase = BackupProgress::Phase;
  auto has = [&](std::string_view text) { return line.find(text) != std::string_view::npos; };
  if (has("INFO: execute non-exclusive backup start")) return BackupProgress{Phase::kCheckpoint};
  if (has("INFO: backup start archive = ")) return BackupProgress{Phase::kCopying, 0};
  if (has("backup stop and wait for all WAL segments to archive")) {
    return BackupProgress{Phase::kArchiving, 100};
  }
  if (has("INFO: new backup label = ")) return BackupProgress{Phase::kDone, 100};
  // DETAIL: backup file /data/base/5/16384 (274.2MB, 92.54%) checksum ...
  // DETAIL: match file from prior backup /data/base/1/1255 (768KB, 3.10%) checksum ...
  // (and "checksum resumed file"; a bundle adds a field before the size): the share is the
  // last field in the parentheses after the file's name.
  if (!has("DETAIL: ") || !has(" file ")) return std::nullopt;
  static const std::regex kShare(R"(\((?:[^()]*, )?([0-9]{1,3}(\.[0-9]+)?)%\))");
  std::match_results<std::string_view::const_iterator> found;
  if (std::regex_search(line.begin(), line.end(), found, kShare)) {
    return BackupProgress{Phase::kCopying, std::stod(found[1].str())};
  }
  return std::nullopt;
}

std::string progress_text(const BackupProgress& progress) {
  switch (progress.phase) {
    case BackupProgress::Phase::kCheckpoint:
      return "waiting for the primary's checkpoint";
    case BackupProgress::Phase::kCopying:
      return fmt::format("copying {:.1f} %", progress.percent);
    case BackupProgress::Phase::kArchiving:
      return "copied; waiting for its WAL to reach the archive";
    case BackupProgress::Phase::kDone:
      return "in the repository";
  }
  return "";
}

std::optional<BackupProgress> ProgressSteps::next(const BackupProgress& progress) {
  BackupProgress step = progress;
  if (step.phase == BackupProgress::Phase::kCopying) {
    step.percent = 10 * static_cast<int>(progress.percent / 10);
  }
  if (last_ && last_->phase == step.phase && last_->percent == step.percent) return std::nullopt;
  last_ = step;
  return step;
}

Result<BackupType> parse_backup_type(std::string_view text) {
  if (text == "full") return BackupType::kFull;
  if (text == "diff") return BackupType::kDiff;
  if (text == "incr") return BackupType::kIncr;
  return fail(ErrorCode::kInvalidArgument,
              fmt::format("backup type '{}' is not one of full, diff, incr", text));
}

std::string_view backup_type_name(BackupType type) {
  switch (type) {
    case BackupType::kFull:
      return "full";
    case BackupType::kDiff:
      return "diff";
    case BackupType::kIncr:
      return "incr";
  }
  return "full";
}

Status check_backup_repository(const ClusterConfig& config, const OsUser& os_user) {
  if (access(config.backup.pgbackrest.c_str(), X_OK) != 0) {
    return fail(ErrorCode::kNotFound,
                fmt::format("backup.pgbackrest {} is not a program tandem can run: install "
                            "pgBackRest (apt-get install pgbackrest)",
                            config.backup.pgbackrest));
  }
  const std::string& repository = config.backup.repository;
  std::error_code error;
  if (!std::filesystem::is_directory(repository, error)) {
    return fail(ErrorCode::kNotFound,
                fmt::format("backup.repository {} is not a directory: make it, owned by {}, "
                            "on a disk other than the data directories'",
                            repository, os_user.name));
  }
  if (!user_can_use_dir(repository, os_user, /*write=*/true)) {
    return fail(
        ErrorCode::kPermissionDenied,
        fmt::format("OS user {} cannot write backup.repository {}", os_user.name, repository));
  }
  return {};
}

Status check_stanza_free(const ClusterConfig& config, ProcessRunner& runner) {
  // No node has its pgbackrest.conf yet: the repository named (on the repository host, reached
  // over TLS, which answers within 10 s or not at all), and no configuration file read (never
  // /etc/pgbackrest.conf).
  std::vector<std::string> args = {"--no-config", "--repo1-path=" + config.backup.repository};
  std::string where = config.backup.repository;
  if (config.backup.remote()) {
    std::ranges::copy(repository_host_args(config), std::back_inserter(args));
    args.push_back("--io-timeout=10");
    where = fmt::format("{} on the repository host {}", config.backup.repository,
                        config.backup.repository_host);
  }
  for (const char* arg : {"--log-level-file=off", "--log-level-console=warn", "--output=json"}) {
    args.emplace_back(arg);
  }
  args.push_back("--stanza=" + config.stanza());
  args.emplace_back("info");
  ProcessSpec spec{.program = config.backup.pgbackrest,
                   .args = std::move(args),
                   .run_as = config.os_user,
                   .timeout = std::chrono::minutes(1)};
  auto result = runner.run(spec);
  if (!result) return std::unexpected(result.error());
  if (result->exit_code != 0) {
    return fail(ErrorCode::kFailed,
                fmt::format("pgbackrest info of {} failed: {}; nothing was made", where,
                            failure_line(result->output)));
  }
  auto info = parse_backrest_info(result->output, config.stanza());
  if (!info) return std::unexpected(info.error());
  if (!info->stanza_exists()) return {};
  if (info->system_ids.empty()) {  // a half-made stanza, or one pgBackRest cannot read
    return fail(ErrorCode::kAlreadyExists,
                fmt::format("backup.repository {} has stanza {}, which pgBackRest reads as: {}; "
                            "a new cluster needs a stanza of its own (set backup.stanza); "
                            "nothing was made",
                            config.backup.repository, config.stanza(), info->status));
  }
  return fail(ErrorCode::kAlreadyExists,
              fmt::format("backup.repository {} already holds stanza {} (a database with system "
                          "identifier {}, {} backups): a new cluster needs a stanza of its own "
                          "(set backup.stanza; `pgbackrest --stanza={} stop` then `stanza-delete` "
                          "removes one no longer wanted); nothing was made",
                          config.backup.repository, config.stanza(), info->system_ids.back(),
                          info->backups.size(), config.stanza()));
}

ProcessSpec backrest_server_spec(const ClusterConfig& config, const std::string& conf) {
  return {.program = config.backup.pgbackrest,
          .args = {"--config=" + conf, "--log-level-console=warn", "server"},
          .env = {{"PGPASSFILE", config.password_file}},
          .run_as = config.os_user};
}

std::string repository_conf_path(const ClusterConfig& config) {
  return config.backup.repository + "/" + kRepositoryConfName;
}

bool on_repository_host(const ClusterConfig& config) {
  return config.backup.remote() && is_own_address(config.backup.repository_host);
}

Status write_repository_conf(const ClusterConfig& config, const OsUser& os_user) {
  return write_owned_file(repository_conf_path(config), render_repository_conf(config), os_user,
                          0600);
}

BackRest::BackRest(const ClusterConfig& config, ProcessRunner& runner,
                   std::optional<bool> here_is_repository_host)
    : config_(config),
      runner_(runner),
      here_is_repository_host_(here_is_repository_host.value_or(on_repository_host(config))) {}

std::string BackRest::conf_of(const NodeConfig& node) const {
  if (here_is_repository_host_) return repository_conf_path(config_);
  return pgbackrest_conf_path(node);
}

Status BackRest::need_repository_host() const {
  if (!config_.backup.remote() || here_is_repository_host_) return {};
  return fail(ErrorCode::kInvalidArgument,
              fmt::format("pgBackRest 2.45 takes a backup only where the repository is: run "
                          "tandem backup on the repository host {}",
                          config_.backup.repository_host));
}

Result<std::string> BackRest::run(const NodeConfig& node, std::vector<std::string> args,
                                  std::chrono::milliseconds timeout,
                                  std::function<void(std::string_view)> on_line,
                                  bool names_primary) {
  std::vector<std::string> full = {"--config=" + conf_of(node), "--stanza=" + config_.stanza()};
  // The repository host's settings name no node: for the commands that reach one, `node` is
  // pg1 (the primary). pgBackRest refuses pg options to the others (info).
  if (names_primary && here_is_repository_host_) {
    std::ranges::copy(remote_pg_args(config_, 1, node), std::back_inserter(full));
  }
  full.insert(full.end(), args.begin(), args.end());
  ProcessSpec spec{.program = config_.backup.pgbackrest,
                   .args = std::move(full),
                   .env = {{"PGPASSFILE", config_.password_file}},
                   .run_as = config_.os_user,
                   .timeout = timeout,
                   .on_line = std::move(on_line)};
  auto result = runner_.run(spec);
  if (!result) return std::unexpected(result.error());
  if (result->exit_code != 0) {
    std::string reason = failure_line(result->output);
    // pgBackRest's LockAcquireError when another of its processes holds the stanza's lock (a
    // backup of a node that was the primary, still ending) — not when the lock file cannot be
    // opened, the same code; FileMissingError when the stanza was never created — not for any
    // other missing file. By their hints (pgBackRest 2.45).
    constexpr int kLockHeld = 50;
    constexpr int kFileMissing = 55;
    bool busy = result->exit_code == kLockHeld &&
                result->output.find("is another pgBackRest process running?") != std::string::npos;
    bool no_stanza =
        result->exit_code == kFileMissing &&
        result->output.find("has a stanza-create been performed?") != std::string::npos;
    return fail(busy        ? ErrorCode::kConflict
                : no_stanza ? ErrorCode::kNotFound
                            : ErrorCode::kFailed,
                fmt::format("pgbackrest {} failed (exit {}): {}", args.empty() ? "" : args.back(),
                            result->exit_code, reason.empty() ? "no output" : reason));
  }
  return result->output;
}

Status BackRest::create_stanza(const NodeConfig& primary) {
  // Run even when the stanza exists: it does nothing then, but refuses a stanza made for
  // another database (another system identifier), whose archive would refuse every segment.
  auto created = run(primary, {"stanza-create"}, std::chrono::minutes(2), {}, kNamesThePrimary);
  if (!created) return std::unexpected(created.error());
  return {};
}

Status BackRest::check(const NodeConfig& primary) {
  auto checked = run(primary, {"check"}, std::chrono::minutes(2), {}, kNamesThePrimary);
  if (!checked) return std::unexpected(checked.error());
  return {};
}

Status checkpoint_after_promotion(const ClusterConfig& config, const NodeConfig& primary) {
  auto checked = [&]() -> Status {
    auto connection = connect_admin(config, primary);
    if (!connection) return std::unexpected(connection.error());
    auto checkpointed = checkpoint_wal(*connection);
    if (!checkpointed) return std::unexpected(checkpointed.error());
    auto writing = primary_timeline(*connection);
    if (!writing) return std::unexpected(writing.error());
    if (checkpointed->timeline >= *writing) return {};
    return checkpoint(*connection);
  }();
  if (checked) return {};
  return fail(ErrorCode::kFailed,
              fmt::format("{} before the backup: {}", primary.name, checked.error().message));
}

Status BackRest::backup(const NodeConfig& primary, const NodeConfig* standby, BackupType type,
                        const std::function<void(const BackupProgress&)>& on_progress) {
  std::vector<std::string> args = {fmt::format("--type={}", backup_type_name(type))};
  std::function<void(std::string_view)> on_line;
  if (on_progress) {
    // Every file copied is a line at this level, with the share of the bytes copied so far.
    args.push_back("--log-level-console=detail");
    on_line = [&on_progress](std::string_view line) {
      if (auto progress = parse_backup_progress(line)) on_progress(*progress);
    };
  }
  if (auto ok = need_repository_host(); !ok) return ok;
  if (standby != nullptr && config_.backup.remote()) {
    // The standby as pg2, on its host: the primary only starts and stops the backup.
    std::ranges::copy(remote_pg_args(config_, 2, *standby), std::back_inserter(args));
    args.push_back("--backup-standby");
  } else if (standby != nullptr) {
    // The standby as pg2: pgBackRest asks each which one is the primary, starts and stops the
    // backup there and copies the files from the standby.
    args.insert(args.end(),
                {"--pg2-path=" + standby->data_dir, fmt::format("--pg2-port={}", standby->port),
                 "--pg2-socket-path=" + config_.socket_dir, "--pg2-user=" + config_.superuser,
                 "--backup-standby"});
  }
  args.push_back("backup");
  auto done = run(primary, args, std::chrono::hours(24), on_line, kNamesThePrimary);
  if (!done && done.error().code == ErrorCode::kNotFound) {
    // No stanza yet (pgBackRest refuses at once): made, then the backup again. Not made before
    // every backup: a stanza-create takes 0.6 s here, an eighth of a small backup (bench: the
    // wrapper's cost). pgBackRest's backup itself refuses a stanza of another database.
    if (auto ok = create_stanza(primary); !ok) return ok;
    done =
        run(primary, std::move(args), std::chrono::hours(24), std::move(on_line), kNamesThePrimary);
  }
  if (!done) return std::unexpected(done.error());
  return {};
}

Status BackRest::run_restore(const NodeConfig& node, std::vector<std::string> args) {
  auto done = run(node, std::move(args), std::chrono::hours(24));
  if (!done) return std::unexpected(done.error());
  return {};
}

Result<RepositoryInfo> BackRest::info(const NodeConfig& node) {
  auto output = run(node, {"--output=json", "info"}, std::chrono::minutes(1));
  if (!output) return std::unexpected(output.error());
  return parse_backrest_info(*output, config_.stanza());
}

Result<std::vector<std::string>> restore_target_args(const RestoreRequest& request) {
  const std::string& target = request.target;
  std::string action = request.promote ? "--target-action=promote" : "--target-action=pause";
  if (target == "latest") {
    if (!request.promote) {
      return fail(ErrorCode::kInvalidArgument,
                  "--to latest replays to the archive's end, where nothing can pause: add "
                  "--promote, or name a time or an LSN");
    }
    return std::vector<std::string>{"--type=default"};
  }
  if (target == "immediate") return std::vector<std::string>{"--type=immediate", action};
  if (std::regex_match(target, std::regex("[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}"))) {
    return std::vector<std::string>{"--type=lsn", "--target=" + target, action};
  }
  if (!std::regex_match(target, std::regex("[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:.]+.*"))) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("--to '{}' is neither latest, immediate, an LSN (0/5000028) nor a "
                            "time (2026-12-04 22:30:00+00)",
                            target));
  }
  return std::vector<std::string>{"--type=time", "--target=" + target, action};
}

Status check_restore_target(const RestoreRequest& request, const RepositoryInfo& repository,
                            std::optional<double> target_epoch, double now_epoch) {
  auto refuse = [](std::string why) { return fail(ErrorCode::kInvalidArgument, std::move(why)); };
  std::vector<const BackupSet*> usable;
  for (const BackupSet& backup : repository.backups) {
    if (request.set.empty() || backup.label == request.set) usable.push_back(&backup);
  }
  if (usable.empty()) {
    return refuse(
        request.set.empty()
            ? "the repository has no backup yet: take one (tandem backup) first"
            : fmt::format("the repository has no backup {} (tandem backup list)", request.set));
  }
  const BackupSet& oldest = *usable.front();
  auto when = [](std::int64_t epoch) {
    return fmt::format("{:%Y-%m-%d %H:%M:%S}+00", fmt::gmtime(static_cast<std::time_t>(epoch)));
  };
  if (target_epoch && *target_epoch < static_cast<double>(oldest.stopped)) {
    return refuse(fmt::format(
        "--to {} is before the end of the oldest backup{} ({}): the earliest time to restore "
        "to is {}",
        request.target, request.set.empty() ? "" : " of that set", oldest.label,
        when(oldest.stopped + 1)));  // its stop is in whole seconds: the next one is safe
  }
  if (target_epoch && *target_epoch > now_epoch) {
    return refuse(fmt::format(
        "--to {} is in the future: the archive ends now (--to latest --promote replays all of "
        "it)",
        request.target));
  }
  auto target_lsn = Lsn::parse(request.target);
  auto oldest_lsn = Lsn::parse(oldest.lsn_stop);
  if (target_lsn && oldest_lsn && *target_lsn < *oldest_lsn) {
    return refuse(fmt::format(
        "--to {} is before the end of the oldest backup ({} ends at {}): the earliest LSN to "
        "restore to is {}",
        request.target, oldest.label, oldest.lsn_stop, oldest.lsn_stop));
  }
  return {};
}

NodeConfig restored_node(const RestoreRequest& request) {
  return {.name = fmt::format("restored_{}", request.port),
          .host = "127.0.0.1",
          .port = request.port,
          .data_dir = request.dir};
}

namespace {

// Refuses a directory or port the running cluster has, or one in use.
Status check_restore_request(const ClusterConfig& config, const RestoreRequest& request) {
  if (!config.backup.enabled()) {
    return fail(ErrorCode::kInvalidArgument, "tandem.yaml has no backup section: no repository");
  }
  if (!request.dir.starts_with("/")) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("--dir {} must be an absolute path", request.dir));
  }
  // Links resolved and trailing separators dropped on both sides: /data/node1/ and a link to it
  // are node1's directory too (review).
  auto resolved = [](const std::string& path) {
    std::error_code error;
    std::filesystem::path real = std::filesystem::weakly_canonical(path, error);
    if (error) real = std::filesystem::path(path).lexically_normal();
    return real.has_filename() ? real : real.parent_path();
  };
  std::filesystem::path dir = resolved(request.dir);
  for (const NodeConfig& node : config.nodes) {
    std::filesystem::path data = resolved(node.data_dir);
    auto [ends, _] = std::mismatch(data.begin(), data.end(), dir.begin(), dir.end());
    if (ends == data.end() || node.port == request.port) {
      return fail(ErrorCode::kConflict,
                  fmt::format("{} is {}'s: a restore never goes over the running cluster",
                              node.port == request.port ? fmt::format("port {}", request.port)
                                                        : "--dir " + request.dir,
                              node.name));
    }
  }
  if (!is_absent_or_empty(request.dir)) {
    return fail(
        ErrorCode::kAlreadyExists,
        fmt::format("--dir {} exists and is not empty: tandem never overwrites one", request.dir));
  }
  return check_port_free("127.0.0.1", request.port, "the restored copy");
}

// A node's pgbackrest.conf to read the repository's settings from.
// The copy's own settings: its port, no upstream, no archiving; standby.signal from a backup
// taken from a standby would keep it replaying for ever.
Status prepare_copy(const Context& context, const NodeConfig& copy) {
  ClusterConfig alone = context.config;
  alone.backup = {};
  alone.name = copy.name;
  // A cluster of its own, which no standby will ever join: its commits wait for none.
  alone.ha.synchronous_mode = false;
  alone.ha.synchronous_mode_strict = false;
  if (auto ok =
          write_owned_file(copy.data_dir + "/" + kTandemConfName,
                           render_tandem_conf(alone, copy, std::nullopt), context.os_user, 0600);
      !ok) {
    return ok;
  }
  for (const std::string& name :
       {std::string("standby.signal"), std::string(kPgBackRestConfName)}) {
    if (auto ok = remove_file_nofollow(copy.data_dir + "/" + name); !ok) return ok;
  }
  return {};
}

// check_restore_target with what the repository holds and, for a time, what PostgreSQL reads
// in it (any server of the cluster that answers; none: pgBackRest and PostgreSQL say it later).
Status restorable(Context& context, const RestoreRequest& request, const NodeConfig& source) {
  BackRest backrest(context.config, *context.runner);
  auto repository = backrest.info(source);
  if (!repository) return fail_with_context(repository.error(), "reading the repository");
  std::optional<double> target_epoch;
  bool time_target =
      request.target != "latest" && request.target != "immediate" && !Lsn::parse(request.target);
  for (const NodeConfig& node : context.config.nodes) {
    if (!time_target) break;
    auto connection = connect_admin(context.config, node);
    if (!connection) continue;
    auto epoch = epoch_of(*connection, request.target);
    if (!epoch && epoch.error().code != ErrorCode::kUnavailable) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("--to {}: {}", request.target, epoch.error().message));
    }
    if (epoch) target_epoch = *epoch;
    break;
  }
  double now = std::chrono::duration<double>(context.clock.wall_now().time_since_epoch()).count();
  return check_restore_target(request, *repository, target_epoch, now);
}

}  // namespace

LastBackup last_backup_of(const RepositoryInfo& repository, std::int64_t now_ms) {
  LastBackup last{.checked_ms = now_ms};
  if (repository.backups.empty()) return last;
  const BackupSet& newest = repository.backups.back();
  last.label = newest.label;
  last.type = newest.type;
  last.stopped_s = newest.stopped;
  return last;
}

Status record_last_backup(const ClusterConfig& config, Clock& clock, const LastBackup& last) {
  auto store = open_cluster_store(config, clock);
  if (!store) return std::unexpected(store.error());
  ClusterLayout layout(config.name);
  auto written = (*store)->put(layout.last_backup(), encode_last_backup(last), std::nullopt);
  if (!written) return std::unexpected(written.error());
  return {};
}

Result<const NodeConfig*> node_with_backrest_conf(const ClusterConfig& config) {
  for (const NodeConfig& node : config.nodes) {
    std::error_code error;
    if (std::filesystem::exists(pgbackrest_conf_path(node), error)) return &node;
  }
  return fail(ErrorCode::kNotFound,
              fmt::format("no node of this machine has {}: is backup configured on it?",
                          kPgBackRestConfName));
}

Status restore_copy(Context& context, const RestoreRequest& request) {
  const ClusterConfig& config = context.config;
  if (auto ok = check_restore_request(config, request); !ok) return ok;
  auto args = restore_target_args(request);
  if (!args) return std::unexpected(args.error());
  auto source = node_with_backrest_conf(config);
  if (!source) return std::unexpected(source.error());
  if (auto ok = restorable(context, request, **source); !ok) return ok;
  NodeConfig copy = restored_node(request);
  if (auto ok = ensure_owned_dir(copy.data_dir, context.os_user, 0700, /*take_existing=*/true);
      !ok) {
    return ok;
  }
  // --archive-mode=off: the copy, once promoted, must not push its own timeline into the
  // cluster's archive (tried: with pgBackRest's default it did).
  args->insert(args->begin(), {"--pg1-path=" + copy.data_dir, "--archive-mode=off"});
  if (!request.set.empty()) args->push_back("--set=" + request.set);
  args->push_back("restore");
  context.report(fmt::format("restoring stanza {} into {} (target {})", config.stanza(),
                             copy.data_dir, request.target));
  BackRest backrest(config, *context.runner);
  if (auto ok = backrest.run_restore(**source, std::move(*args)); !ok) return ok;
  if (auto ok = prepare_copy(context, copy); !ok) return ok;
  // Why the copy stopped, from its log: a target past the archive's end, say.
  auto reason_in_log = [&](const std::string& otherwise) {
    auto log = read_file_nofollow(config.log_dir + "/" + copy.name + ".log");
    std::string line = log ? failure_line(*log) : "";
    return line.empty() ? otherwise : line;
  };
  // start() gives up waiting after the start timeout; a copy with much WAL to replay before it
  // is consistent runs on meanwhile, and the wait below is the one that counts.
  if (auto ok = context.controller.start(copy); !ok && !running_postmaster(copy.data_dir)) {
    return fail(ok.error().code, fmt::format("the restored copy in {} did not start: {}",
                                             copy.data_dir, reason_in_log(ok.error().message)));
  }
  context.report(
      fmt::format("started the copy on port {}: replaying WAL from the archive", copy.port));
  std::optional<RecoveryState> reached;
  std::string last_error;
  bool stopped = false;
  bool done = poll_until(context.clock, std::chrono::hours(12), std::chrono::milliseconds(50), [&] {
    if (!running_postmaster(copy.data_dir)) return stopped = true;
    // Over its socket: on this machine, whatever TCP and TLS the cluster's nodes use.
    auto connection = connect_local_admin(config, copy);
    if (!connection) {
      last_error = connection.error().message;
      return false;
    }
    auto state = recovery_state(*connection);
    if (!state) {
      last_error = state.error().message;
      return false;
    }
    if (state->progress == RecoveryProgress::kReplaying) return false;
    reached = *state;
    return true;
  });
  if (stopped) {
    return fail(ErrorCode::kFailed,
                fmt::format("the restored copy stopped before its target: {} (its data is kept "
                            "in {})",
                            reason_in_log("see its log"), copy.data_dir));
  }
  if (!done || !reached) {
    return fail(ErrorCode::kTimeout,
                fmt::format("the copy did not reach its target: {}", last_error));
  }
  context.report(
      reached->progress == RecoveryProgress::kPromoted
          ? fmt::format("the copy is promoted: a primary of its own on port {}", copy.port)
          : fmt::format(
                "the copy is paused at its target (replayed to {}, last transaction at {}) on "
                "port {}: read-only until pg_wal_replay_resume promotes it",
                reached->replayed ? reached->replayed->str() : "-",
                reached->last_commit_time.empty() ? "-" : reached->last_commit_time, copy.port));
  return {};
}

}  // namespace tandem
