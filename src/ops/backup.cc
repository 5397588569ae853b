#include "ops/backup.h"

#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "pg/server_files.h"

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

Result<std::string> BackRest::run(const NodeConfig& node, std::vector<std::string> args,
                                  std::chrono::milliseconds timeout, bool progress_to_terminal) {
  std::vector<std::string> full = {"--config=" + node.data_dir + "/" + kPgBackRestConfName,
                                   "--stanza=" + config_.stanza()};
  full.insert(full.end(), args.begin(), args.end());
  ProcessSpec spec{.program = config_.backup.pgbackrest,
                   .args = std::move(full),
                   .env = {{"PGPASSFILE", config_.password_file}},
                   .run_as = config_.os_user,
                   .timeout = timeout,
                   .stderr_to_terminal = progress_to_terminal};
  auto result = runner_.run(spec);
  if (!result) return std::unexpected(result.error());
  if (result->exit_code != 0) {
    std::string reason = failure_line(result->output);
    return fail(ErrorCode::kFailed,
                fmt::format("pgbackrest {} failed (exit {}): {}", args.empty() ? "" : args.back(),
                            result->exit_code, reason.empty() ? "no output" : reason));
  }
  return result->output;
}

Status BackRest::create_stanza(const NodeConfig& primary) {
  auto info = this->info(primary);
  if (!info) return std::unexpected(info.error());
  if (info->stanza_exists()) return {};
  auto created = run(primary, {"stanza-create"}, std::chrono::minutes(2));
  if (!created) return std::unexpected(created.error());
  return {};
}

Status BackRest::check(const NodeConfig& primary) {
  auto checked = run(primary, {"check"}, std::chrono::minutes(2));
  if (!checked) return std::unexpected(checked.error());
  return {};
}

Status BackRest::backup(const NodeConfig& primary, const NodeConfig* standby, BackupType type,
                        bool progress_to_terminal) {
  std::vector<std::string> args = {fmt::format("--type={}", backup_type_name(type))};
  if (standby != nullptr) {
    // The standby as pg2: pgBackRest asks each which one is the primary, starts and stops the
    // backup there and copies the files from the standby.
    args.insert(args.end(),
                {"--pg2-path=" + standby->data_dir, fmt::format("--pg2-port={}", standby->port),
                 "--pg2-socket-path=" + config_.socket_dir, "--pg2-user=" + config_.superuser,
                 "--backup-standby"});
  }
  if (progress_to_terminal) args.push_back("--log-level-console=info");
  args.push_back("backup");
  auto done = run(primary, std::move(args), std::chrono::hours(24), progress_to_terminal);
  if (!done) return std::unexpected(done.error());
  return {};
}

Result<RepositoryInfo> BackRest::info(const NodeConfig& node) {
  auto output = run(node, {"--output=json", "info"}, std::chrono::minutes(1));
  if (!output) return std::unexpected(output.error());
  return parse_backrest_info(*output, config_.stanza());
}

}  // namespace tandem
