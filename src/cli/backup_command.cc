// tandem backup [--type full|diff|incr] [--from-primary] | backup list [--json] | backup check:
// pgBackRest backups of the cluster, taken from a streaming standby when there is one.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "cli/table.h"
#include "common/units.h"
#include "ops/backup.h"
#include "ops/status.h"
#include "ops/wal_archive.h"

namespace tandem {
namespace {

// The running primary and, unless `from_primary`, the first standby streaming from it.
struct BackupSources {
  const NodeConfig* primary = nullptr;
  const NodeConfig* standby = nullptr;
};

Result<BackupSources> backup_sources(Context& context, bool from_primary) {
  const ClusterConfig& config = context.config;
  if (!config.backup.enabled()) {
    return fail(ErrorCode::kInvalidArgument,
                "tandem.yaml has no backup section (backup.repository): nothing to back up to");
  }
  if (config.backup.remote() && !on_repository_host(config)) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("backups are taken on the repository host {} (pgBackRest copies "
                            "where the repository is): run this command there",
                            config.backup.repository_host));
  }
  if (auto ok = check_backup_repository(config, context.os_user); !ok) {
    return std::unexpected(ok.error());
  }
  ClusterReport report = collect_status(context);
  if (!report.primary) return fail(ErrorCode::kUnavailable, "no primary is running");
  BackupSources sources{.primary = config.find_node(*report.primary)};
  if (from_primary) return sources;
  for (const NodeReport& node : report.nodes) {
    if (node.role == NodeRole::kStandby && node.replication &&
        node.replication->state == "streaming") {
      sources.standby = config.find_node(node.name);
      break;
    }
  }
  return sources;
}

std::string time_text(std::int64_t unix_seconds) {
  auto time = std::chrono::system_clock::time_point(std::chrono::seconds(unix_seconds));
  return fmt::format("{:%Y-%m-%d %H:%M:%S}", time);
}

// Where the backup is, on standard error: one line rewritten on a terminal; otherwise (asked
// for by --progress) a line at each step.
class ProgressDisplay {
 public:
  explicit ProgressDisplay(bool terminal) : terminal_(terminal) {}
  ~ProgressDisplay() {
    if (terminal_ && shown_) std::fputs("\n", stderr);
  }
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;
  void operator()(const BackupProgress& progress) {
    // stdio, not fmt::print: a closed standard error must not throw out of pgBackRest's run.
    if (terminal_) {
      std::fprintf(stderr, "\rbackup: %-48s", progress_text(progress).c_str());
      std::fflush(stderr);
      shown_ = true;
    } else if (auto step = steps_.next(progress)) {
      std::fprintf(stderr, "backup: %s\n", progress_text(*step).c_str());
    }
  }

 private:
  bool terminal_;
  bool shown_ = false;
  ProgressSteps steps_;
};

Status take_backup(Session& session, const std::string& type_text, bool from_primary,
                   bool progress) {
  Context& context = session.context();
  auto type = parse_backup_type(type_text);
  if (!type) return std::unexpected(type.error());
  auto sources = backup_sources(context, from_primary);
  if (!sources) return std::unexpected(sources.error());
  BackRest backrest(context.config, session.runner());
  const NodeConfig& from = sources->standby ? *sources->standby : *sources->primary;
  context.report(fmt::format("{} backup of stanza {} from {}{}", backup_type_name(*type),
                             context.config.stanza(), from.name,
                             sources->standby ? "" : " (the primary: no standby streams)"));
  if (auto ok = checkpoint_after_promotion(context.config, *sources->primary); !ok) return ok;
  auto started = std::chrono::steady_clock::now();
  bool terminal = isatty(STDERR_FILENO) == 1;
  std::function<void(const BackupProgress&)> on_progress;
  std::optional<ProgressDisplay> display;
  if (terminal || progress) {
    display.emplace(terminal);
    on_progress = [&display](const BackupProgress& where) { (*display)(where); };
  }
  auto done = backrest.backup(*sources->primary, sources->standby, *type, on_progress);
  display.reset();  // its last line ended before what follows
  if (!done) return done;
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  auto info = backrest.info(*sources->primary);
  if (!info) return std::unexpected(info.error());
  if (info->backups.empty()) {
    return fail(ErrorCode::kFailed, "pgbackrest backup succeeded but info lists no backup");
  }
  const BackupSet& last = info->backups.back();
  // The agents say the age of the last backup from the store (/cluster, /metrics).
  if (auto ok = record_last_backup(context.config, context.clock,
                                   last_backup_of(*info, wall_ms_of(context.clock)));
      !ok) {
    spdlog::warn("the store's record of the last backup not written: {}", ok.error().message);
  }
  fmt::print("backup {} ({}) taken from {} in {:.1f} s: {} of data, {} added to the repository\n",
             last.label, last.type, from.name, took.count() / 1000.0, format_size_human(last.size),
             format_size_human(last.repository_delta));
  return {};
}

Status list_backups(Session& session, bool json) {
  Context& context = session.context();
  if (!context.config.backup.enabled()) {
    return fail(ErrorCode::kInvalidArgument, "tandem.yaml has no backup section");
  }
  BackRest backrest(context.config, session.runner());
  // Any node's settings name the same repository: this machine's first; the repository host's
  // own there.
  const NodeConfig* source = &context.config.nodes.front();
  if (!on_repository_host(context.config)) {
    auto local = node_with_backrest_conf(context.config);
    if (!local) return std::unexpected(local.error());
    source = *local;
  }
  auto info = backrest.info(*source);
  if (!info) return std::unexpected(info.error());
  if (json) {
    nlohmann::json out = {{"stanza", context.config.stanza()},
                          {"status", info->status},
                          {"archive_min", info->archive_min},
                          {"archive_max", info->archive_max},
                          {"backups", nlohmann::json::array()}};
    for (const BackupSet& set : info->backups) {
      out["backups"].push_back({{"label", set.label},
                                {"type", set.type},
                                {"started", set.started},
                                {"stopped", set.stopped},
                                {"lsn_start", set.lsn_start},
                                {"lsn_stop", set.lsn_stop},
                                {"wal_start", set.wal_start},
                                {"wal_stop", set.wal_stop},
                                {"size", set.size},
                                {"repository_size", set.repository_size},
                                {"repository_delta", set.repository_delta},
                                {"error", set.error}});
    }
    fmt::print("{}\n", out.dump(2));
    return {};
  }
  fmt::print("stanza {}: {}; WAL archived {} .. {}\n", context.config.stanza(), info->status,
             info->archive_min.empty() ? "-" : info->archive_min,
             info->archive_max.empty() ? "-" : info->archive_max);
  std::vector<std::vector<std::string>> rows;
  for (const BackupSet& set : info->backups) {
    rows.push_back({set.label, set.type, time_text(set.started),
                    fmt::format("{} s", set.stopped - set.started), format_size_human(set.size),
                    format_size_human(set.repository_delta), set.lsn_start + " .. " + set.lsn_stop,
                    set.error ? "page checksum errors" : ""});
  }
  fmt::print(
      "{}",
      render_table({"LABEL", "TYPE", "STARTED", "TOOK", "SIZE", "ADDED", "LSN", "PROBLEMS"}, rows));
  return {};
}

Status check_archive(Session& session) {
  Context& context = session.context();
  auto sources = backup_sources(context, true);
  if (!sources) return std::unexpected(sources.error());
  BackRest backrest(context.config, session.runner());
  // With a repository host, `tandem repository` makes the stanza.
  if (!context.config.backup.remote()) {
    if (auto ok = backrest.create_stanza(*sources->primary); !ok) return ok;
  }
  if (auto ok = backrest.check(*sources->primary); !ok) return ok;
  fmt::print("stanza {}: {}'s WAL reaches the repository {}\n", context.config.stanza(),
             sources->primary->name, context.config.backup.repository);
  return {};
}

void add_restore_command(CLI::App& app, CliState& state) {
  auto* restore = app.add_subcommand(
      "restore",
      "Restore the cluster as it was at a time or LSN into a new data directory and start it "
      "there, paused at the target (never over the running cluster)");
  auto request = std::make_shared<RestoreRequest>();
  restore
      ->add_option("--to", request->target,
                   "latest, immediate, an LSN (0/5000028) or a time (\"2026-12-04 22:30:00+00\")")
      ->capture_default_str();
  restore->add_option("--dir", request->dir, "A new data directory (absent or empty)")->required();
  restore->add_option("--port", request->port, "The port the copy listens on")->required();
  restore->add_flag("--promote", request->promote,
                    "Promote the copy at the target: a primary of its own, not of the cluster");
  restore->add_option("--set", request->set, "The backup to restore from (its label)");
  restore->callback([&state, request] {
    state.result = with_session(state, [&](Context& context) -> Status {
      if (auto ok = restore_copy(context, *request); !ok) return ok;
      fmt::print("restored into {}: psql -h {} -p {}\n", request->dir, context.config.socket_dir,
                 request->port);
      return {};
    });
  });
}

// PostgreSQL's archive_command with backup: (pg/server_files.cc), not for people: pgBackRest's
// archive-push run through ops archive_push_segment, its output to PostgreSQL's log.
void add_archive_push_command(CLI::App& app, CliState& state) {
  auto* push = app.add_subcommand(
      "archive-push", "PostgreSQL's archive_command: pgBackRest's archive-push of one segment");
  push->group("");  // hidden
  auto command = std::make_shared<std::vector<std::string>>();
  push->add_option("command", *command, "pgBackRest's command line, the segment's path last")
      ->required();
  push->callback([&state, command] {
    SystemProcessRunner runner;
    std::string output;
    auto pushed = archive_push_segment(runner, *command, pgbackrest_variables(environ), output);
    std::fputs(output.c_str(), stderr);
    if (pushed && !pushed->empty()) fmt::print(stderr, "{}\n", *pushed);
    state.result = pushed ? Status{} : Status(std::unexpected(pushed.error()));
  });
}

}  // namespace

void add_backup_command(CLI::App& app, CliState& state) {
  add_restore_command(app, state);
  add_archive_push_command(app, state);
  auto* backup = app.add_subcommand(
      "backup",
      "Take a pgBackRest backup (from a streaming standby), list them, check the archive");
  backup->require_subcommand(0, 1);
  auto type = std::make_shared<std::string>("incr");
  auto from_primary = std::make_shared<bool>(false);
  auto progress = std::make_shared<bool>(false);
  backup->add_option("--type", *type, "full, diff or incr (incr: full when there is none yet)")
      ->capture_default_str();
  backup->add_flag("--from-primary", *from_primary,
                   "Copy the files from the primary even when a standby streams");
  backup->add_flag("--progress", *progress,
                   "Say where the backup is on standard error (always shown on a terminal)");

  auto* list = backup->add_subcommand("list", "The backups in the repository and the archive");
  auto json = std::make_shared<bool>(false);
  list->add_flag("--json", *json, "Print JSON for scripts");
  list->callback([&state, json] {
    state.result =
        with_session_of(state, [&](Session& session) { return list_backups(session, *json); });
  });
  auto* check = backup->add_subcommand(
      "check", "Create the stanza if needed and check that the primary's WAL reaches the archive");
  check->callback([&state] {
    state.result = with_session_of(state, [](Session& session) { return check_archive(session); });
  });
  backup->callback([&state, backup, type, from_primary, progress] {
    if (!backup->get_subcommands().empty()) return;
    state.result = with_session_of(state, [&](Session& session) {
      return take_backup(session, *type, *from_primary, *progress);
    });
  });
}

}  // namespace tandem
