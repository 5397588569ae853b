#include "ops/wal_archive.h"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <set>

#include "core/timeline.h"
#include "proc/safe_file.h"

namespace tandem {
namespace {

// The names in a directory of pg_wal.
Result<std::vector<std::string>> list_wal_directory(const std::string& wal_dir) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(wal_dir, error)) {
    names.push_back(entry.path().filename().string());
  }
  if (error) {
    return fail(ErrorCode::kFailed, fmt::format("reading {}: {}", wal_dir, error.message()));
  }
  return names;
}

// pgBackRest's "ERROR: [045]: WAL file 'SEGMENT' already exists in the repo1 archive with a
// different checksum", for this segment.
bool archive_holds_another_copy(const ProcessResult& result, const std::string& segment) {
  return result.output.find("ERROR: [045]") != std::string::npos &&
         result.output.find("'" + segment + "'") != std::string::npos;
}

// The newest history file among a pg_wal directory's names, read.
Result<TimelineHistory> newest_history_in(const std::string& wal_dir,
                                          const std::vector<std::string>& names) {
  TimelineId newest = newest_history(names);
  auto text = read_file_nofollow(wal_dir + "/" + history_file_name(newest));
  if (!text) return std::unexpected(text.error());
  return TimelineHistory::parse(newest, *text);
}

}  // namespace

Result<int> mark_received_wal(const ClusterConfig& config, ProcessRunner& runner,
                              const NodeConfig& node, std::string_view archived) {
  std::string wal_dir = node.data_dir + "/pg_wal";
  auto listed = list_wal_directory(wal_dir);
  if (!listed) return std::unexpected(listed.error());
  auto statuses = list_wal_directory(wal_dir + "/archive_status");
  if (!statuses) return std::unexpected(statuses.error());
  std::set<std::string> done;
  for (const std::string& name : *statuses) {
    if (name.ends_with(".done")) done.insert(name.substr(0, name.size() - 5));
  }
  std::vector<std::string> received;
  for (const std::string& name : *listed) {
    if (done.contains(name)) received.push_back(name);
  }
  // .done renamed .ready, as PostgreSQL's own XLogArchiveNotify leaves it: with .done beside
  // it, a checkpoint counts a segment archived and may recycle it first (found by review).
  // One shell, the names its arguments (never its script); one that vanished meanwhile (a
  // restartpoint recycled it) is skipped.
  std::vector<std::string> args = {
      "-c",
      "marked=0; for f do mv -fT -- \"$f.done\" \"$f.ready\" 2>/dev/null && "
      "marked=$((marked+1)); done; echo $marked",
      "sh"};
  for (const std::string& name : received_after(received, archived)) {
    args.push_back(wal_dir + "/archive_status/" + name);
  }
  if (args.size() == 3) return 0;
  ProcessSpec rename{.program = "/bin/sh",
                     .args = std::move(args),
                     .run_as = config.os_user,
                     .timeout = std::chrono::seconds(5)};
  auto renamed = runner.run(rename);
  if (!renamed) return std::unexpected(renamed.error());
  int marked = 0;
  if (renamed->exit_code != 0 || std::sscanf(renamed->output.c_str(), "%d", &marked) != 1) {
    return fail(ErrorCode::kFailed, fmt::format("marking received WAL for the archive: {}",
                                                failure_line(renamed->output)));
  }
  return marked;
}

std::map<std::string, std::string> pgbackrest_variables(const char* const* environment) {
  std::map<std::string, std::string> found;
  for (; environment != nullptr && *environment != nullptr; ++environment) {
    std::string_view entry(*environment);
    auto equals = entry.find('=');
    if (!entry.starts_with("PGBACKREST_") || equals == std::string_view::npos) continue;
    found[std::string(entry.substr(0, equals))] = std::string(entry.substr(equals + 1));
  }
  return found;
}

Result<std::string> archive_push_segment(ProcessRunner& runner,
                                         const std::vector<std::string>& command,
                                         const std::map<std::string, std::string>& environment,
                                         std::string& output) {
  output.clear();
  if (command.size() < 2 || !command.front().starts_with("/")) {
    return fail(ErrorCode::kInvalidArgument,
                "tandem archive-push: expected pgBackRest's absolute path, its arguments and "
                "the segment's path");
  }
  std::error_code error;
  std::string here = std::filesystem::current_path(error).string();
  if (error) return fail(ErrorCode::kFailed, "tandem archive-push: " + error.message());
  ProcessSpec push{.program = command.front(),
                   .args = std::vector<std::string>(command.begin() + 1, command.end()),
                   .env = environment,
                   .working_dir = here,
                   .timeout = std::chrono::hours(1)};
  auto pushed = runner.run(push);
  if (!pushed) return std::unexpected(pushed.error());
  output = pushed->output;
  if (pushed->exit_code == 0) return std::string();
  std::filesystem::path path(command.back());
  std::string segment = path.filename().string();
  if (archive_holds_another_copy(*pushed, segment)) {
    std::string wal_dir = path.has_parent_path() ? path.parent_path().string() : ".";
    auto listed = list_wal_directory(wal_dir);
    auto history = listed ? newest_history_in(wal_dir, *listed)
                          : Result<TimelineHistory>(std::unexpected(listed.error()));
    if (history && of_a_timeline_left(segment, *history)) {
      return fmt::format(
          "tandem: WAL segment {} is in the archive already as another copy, which pgBackRest "
          "refuses; timeline {} ended before timeline {} (this node's history), and recovery "
          "along it reads of either copy only the WAL they share: counted as archived",
          segment, *segment_timeline(segment), history->current());
    }
  }
  return fail(ErrorCode::kFailed,
              fmt::format("pgbackrest archive-push {}: {}", segment, failure_line(pushed->output)));
}

}  // namespace tandem
