#include "ops/wal_archive.h"

#include <fmt/format.h>

#include <filesystem>
#include <set>

#include "core/timeline.h"
#include "proc/safe_file.h"

namespace tandem {
namespace {

struct WalDirectory {
  std::vector<std::string> names;
};

Result<WalDirectory> list_wal_directory(const std::string& wal_dir) {
  WalDirectory listed;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(wal_dir, error)) {
    std::string name = entry.path().filename().string();
    listed.names.push_back(std::move(name));
  }
  if (error) {
    return fail(ErrorCode::kFailed, fmt::format("reading {}: {}", wal_dir, error.message()));
  }
  return listed;
}

// pgBackRest's "WAL file '...' already exists in the repo1 archive with a different checksum".
bool archive_holds_another_copy(const ProcessResult& result) {
  return result.exit_code == 45 || result.output.find("ERROR: [045]") != std::string::npos;
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
  for (const std::string& name : statuses->names) {
    if (name.ends_with(".done")) done.insert(name.substr(0, name.size() - 5));
  }
  std::vector<std::string> received;
  for (const std::string& name : listed->names) {
    if (done.contains(name)) received.push_back(name);
  }
  TimelineId timeline = newest_history(listed->names);
  std::vector<std::string> args = {"--"};
  for (const std::string& name : received_after(received, timeline, archived)) {
    args.push_back(wal_dir + "/archive_status/" + name + ".ready");
  }
  if (args.size() == 1) return 0;
  ProcessSpec touch{.program = "/usr/bin/touch",
                    .args = args,
                    .run_as = config.os_user,
                    .timeout = std::chrono::seconds(30)};
  auto touched = runner.run(touch);
  if (!touched) return std::unexpected(touched.error());
  if (touched->exit_code != 0) {
    return fail(ErrorCode::kFailed, fmt::format("marking WAL of timeline {} for the archive: {}",
                                                timeline, failure_line(touched->output)));
  }
  return static_cast<int>(args.size() - 1);
}

Result<std::string> archive_push_segment(ProcessRunner& runner,
                                         const std::vector<std::string>& command,
                                         std::string& output) {
  if (command.size() < 2 || !command.front().starts_with("/")) {
    return fail(ErrorCode::kInvalidArgument,
                "tandem archive-push: expected pgBackRest's absolute path, its arguments and "
                "the segment's path");
  }
  ProcessSpec push{.program = command.front(),
                   .args = std::vector<std::string>(command.begin() + 1, command.end()),
                   .working_dir = std::filesystem::current_path().string(),
                   .timeout = std::chrono::hours(1)};
  auto pushed = runner.run(push);
  if (!pushed) return std::unexpected(pushed.error());
  output = pushed->output;
  if (pushed->exit_code == 0) return std::string();
  std::filesystem::path segment(command.back());
  if (archive_holds_another_copy(*pushed)) {
    auto listed = list_wal_directory(
        segment.parent_path().empty() ? std::string(".") : segment.parent_path().string());
    if (listed && left_behind(segment.filename().string(), listed->names)) {
      return fmt::format(
          "tandem: WAL segment {} of timeline {}, which this node has left for timeline {}, is "
          "in the archive already as another copy (the promoted node's, the same WAL): counted "
          "as archived",
          segment.filename().string(), *segment_timeline(segment.filename().string()),
          newest_history(listed->names));
    }
  }
  return fail(ErrorCode::kFailed,
              fmt::format("pgbackrest archive-push {}: {}", segment.filename().string(),
                          failure_line(pushed->output)));
}

}  // namespace tandem
