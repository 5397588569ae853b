#include "pg/node_controller.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <libpq-fe.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg/admin_connection.h"
#include "pg/postmaster.h"
#include "pg/rewind_wal.h"
#include "proc/safe_file.h"
#include "proc/sync_filesystems.h"

namespace tandem {
namespace {

// The log's size now: where what a postmaster about to start writes begins.
off_t log_size(const std::string& path) {
  struct stat info {};
  return lstat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) ? info.st_size : 0;
}

// Why a postmaster that exited while starting did: its error line among what it wrote to the log
// from `from` on (at most 64 KiB of it), read without following a link.
std::string startup_failure(const std::string& path, off_t from) {
  auto opened = open_file_nofollow(path, O_RDONLY);
  if (!opened) return "";
  std::string text(64 * 1024, '\0');
  ssize_t got = pread(opened->get(), text.data(), text.size(), from);
  text.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  return failure_line(text);
}

std::string seconds(std::chrono::milliseconds timeout) {
  return std::to_string(
      std::max<long>(1, std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
}

}  // namespace

std::string PgNodeController::log_file(const NodeConfig& node) const {
  return config_.log_dir + "/" + node.name + ".log";
}

Result<std::string> PgNodeController::run(std::string_view program, std::vector<std::string> args,
                                          std::chrono::milliseconds timeout,
                                          bool progress_to_terminal) {
  ProcessSpec spec{.program = binaries_.path(program),
                   .args = std::move(args),
                   .env = {{"PGPASSFILE", config_.password_file}, {"PGCONNECT_TIMEOUT", "5"}},
                   .run_as = config_.os_user,
                   .timeout = timeout + std::chrono::seconds(5),
                   .stderr_to_terminal = progress_to_terminal};
  auto result = runner_.run(spec);
  if (!result) return std::unexpected(result.error());
  if (result->exit_code != 0) {
    std::string reason = failure_line(result->output);
    return fail(ErrorCode::kFailed, fmt::format("{} failed: {}", program,
                                                !reason.empty()        ? reason
                                                : progress_to_terminal ? "its messages are above"
                                                                       : "no output"));
  }
  return result->output;
}

Status PgNodeController::initdb(const NodeConfig& node) {
  auto output =
      run("initdb",
          {"--pgdata=" + node.data_dir, "--data-checksums", "--encoding=UTF8", "--no-locale",
           "--username=" + config_.superuser, "--auth-local=peer", "--auth-host=scram-sha-256"},
          timeouts_.start);
  if (!output) return std::unexpected(output.error());
  return {};
}

// Not `pg_ctl start --wait`: pg_ctl reads postmaster.pid ten times a second, so a server that
// accepted connections after 35 ms was reported started after 100 to 120 (every clone, rejoin
// and start by hand). The postmaster is spawned as pg_ctl spawns it (a session of its own, stdin
// from /dev/null, the log appended; it outlives tandem's command) and asked every 10 ms, as the
// agent asks its own (AgentNodeController::start); its exit while starting is the failure.
Status PgNodeController::start(const NodeConfig& node) {
  if (auto running = running_postmaster(node.data_dir)) {
    return fail(ErrorCode::kConflict,
                fmt::format("{} did not start: a postmaster (pid {}) already runs on {}", node.name,
                            *running, node.data_dir));
  }
  off_t logged = log_size(log_file(node));
  auto pid = spawn_postmaster(binaries_.path("postgres"), node.data_dir, log_file(node), os_user_,
                              /*die_with_caller=*/false);
  if (!pid) return fail_with_context(pid.error(), node.name + " did not start");
  std::string conninfo = local_admin_conninfo(config_, node);
  bool exited = false;
  // The answer must come from this postmaster: the one postmaster.pid names (another server
  // answering on the same socket would not be it).
  bool accepting = poll_until(clock_, timeouts_.start, std::chrono::milliseconds(10), [&] {
    exited = waitpid(*pid, nullptr, WNOHANG) != 0;  // reaped, or not this process's child
    return exited ||
           (running_postmaster(node.data_dir) == *pid && PQping(conninfo.c_str()) == PQPING_OK);
  });
  if (exited) {
    std::string why = startup_failure(log_file(node), logged);
    return fail(ErrorCode::kFailed,
                fmt::format("{} did not start: {} (see {})", node.name,
                            why.empty() ? "its postmaster exited" : why, log_file(node)));
  }
  if (accepting) return {};
  return fail(ErrorCode::kTimeout,
              fmt::format("{} did not accept connections in {} s (see {})", node.name,
                          seconds(timeouts_.start), log_file(node)));
}

Status PgNodeController::stop(const NodeConfig& node, StopMode mode) {
  auto output =
      run("pg_ctl",
          {"stop", "--wait", "--timeout=" + seconds(timeouts_.stop), "--pgdata=" + node.data_dir,
           mode == StopMode::kFast ? "--mode=fast" : "--mode=immediate", "--silent"},
          timeouts_.stop);
  if (!output) return std::unexpected(output.error());
  return {};
}

Status PgNodeController::promote(const NodeConfig& node) {
  // Without --wait: pg_ctl's wait reads only the control file, and sits out its whole timeout
  // when the postmaster dies mid-promotion; the caller polls for writes and for the postmaster.
  auto output = run("pg_ctl", {"promote", "--no-wait", "--pgdata=" + node.data_dir, "--silent"},
                    timeouts_.stop);
  if (!output) return std::unexpected(output.error());
  return {};
}

Status PgNodeController::reload(const NodeConfig& node) {
  auto output = run("pg_ctl", {"reload", "--pgdata=" + node.data_dir, "--silent"}, timeouts_.stop);
  if (!output) return std::unexpected(output.error());
  return {};
}

Result<bool> PgNodeController::is_running(const NodeConfig& node) {
  // Not pg_ctl status: it trusts a stale postmaster.pid whose pid the kernel has reused.
  return running_postmaster(node.data_dir).has_value();
}

Status PgNodeController::base_backup(const NodeConfig& node, const std::string& source_conninfo,
                                     const std::string& slot, bool create_slot) {
  bool progress = isatty(STDERR_FILENO) != 0;
  std::vector<std::string> args = {"--pgdata=" + node.data_dir,
                                   "--dbname=" + source_conninfo,
                                   "--wal-method=stream",
                                   "--checkpoint=fast",
                                   "--slot=" + slot,
                                   "--no-password"};
  if (create_slot) args.push_back("--create-slot");
  if (progress) args.push_back("--progress");
  auto output = run("pg_basebackup", std::move(args), timeouts_.copy, progress);
  if (progress) fmt::print(stderr, "\n");
  if (!output) return std::unexpected(output.error());
  return {};
}

Result<RewindReport> PgNodeController::rewind(const NodeConfig& node,
                                              const std::string& source_conninfo) {
  RewindReport report;
  auto control = control_data(node);
  auto held = control ? HeldWal::hold(node.data_dir, control->wal_segment_bytes)
                      : Result<HeldWal>(std::unexpected(control.error()));
  if (!held) {
    report.held_wal = "its WAL was not held through the rewind: " + held.error().message;
  }
  // --no-sync, then a syncfs of each filesystem the directory spans: pg_rewind's own sync is an
  // fsync of every file of the data directory, whole tables it never touched included — 1.5 to
  // 2 s of a rewind at 4 GB here (bench: rejoin).
  auto output = run("pg_rewind",
                    {"--target-pgdata=" + node.data_dir, "--source-server=" + source_conninfo,
                     "--progress", "--no-sync"},
                    timeouts_.copy);
  if (!output) {
    if (held) (void)held->put_back_all();
    return std::unexpected(output.error());
  }
  report.output = std::move(*output);
  if (held) {
    auto restored = held->restore();
    if (!restored) {
      report.held_wal = "WAL its recovery may need was not put back: " + restored.error().message;
    } else if (!restored->empty()) {
      report.held_wal = fmt::format(
          "put back {} WAL segment(s) pg_rewind removed that its recovery starts in: {}",
          restored->size(), fmt::join(*restored, ", "));
    }
  }
  if (auto synced = sync_filesystems_of(node.data_dir); !synced) {
    return fail_with_context(synced.error(), "pg_rewind done, its copy not synced");
  }
  return report;
}

Result<ControlData> PgNodeController::control_data(const NodeConfig& node) {
  return control_data(node, std::chrono::seconds(30));
}

Result<ControlData> PgNodeController::control_data(const NodeConfig& node,
                                                   std::chrono::milliseconds timeout) {
  auto output = run("pg_controldata", {node.data_dir}, timeout);
  if (!output) return std::unexpected(output.error());
  return parse_control_data(*output);
}

Status PgNodeController::finish_crash_recovery(const NodeConfig& node) {
  // As pg_rewind does it: single-user mode, fsync off, input from /dev/null, then it exits.
  auto output =
      run("postgres", {"--single", "-F", "-D", node.data_dir, "template1"}, timeouts_.start);
  if (!output) return std::unexpected(output.error());
  // Written with fsync off: made durable here, whatever comes next (pg_rewind used to do it; it
  // does not since --no-sync, and a node that then follows without a rewind never did).
  if (auto synced = sync_filesystems_of(node.data_dir); !synced) {
    return fail_with_context(synced.error(), "crash recovery done, not synced");
  }
  return {};
}

}  // namespace tandem
