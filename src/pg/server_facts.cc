#include "pg/server_facts.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <sstream>
#include <vector>

#include "pg/connection.h"
#include "pg/control_data.h"
#include "pg/postmaster.h"
#include "pg/server_files.h"
#include "proc/safe_file.h"

namespace tandem {
namespace {

// The files are the OS user's: read without following a link planted there.
std::string first_line(const std::string& path) {
  std::istringstream in(read_file_nofollow(path).value_or(""));
  std::string line;
  std::getline(in, line);
  return line;
}

std::string owner_of(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) return "";
  if (info.st_uid == 0) return "root";
  struct passwd* entry = getpwuid(info.st_uid);
  return entry == nullptr ? "" : entry->pw_name;
}

// postmaster.pid: pid, data directory, start time, port, socket directory, listen address,
// shared memory key, status (one per line).
void read_postmaster_pid(const std::string& data_dir, ServerFacts& facts) {
  std::istringstream in(read_file_nofollow(data_dir + "/postmaster.pid").value_or(""));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  facts.running = running_postmaster(data_dir).has_value();
  if (lines.size() >= 4) facts.port = std::atoi(lines[3].c_str());
  if (lines.size() >= 5) facts.socket_dir = lines[4];
  // The OS user can write postmaster.pid: the directory must exist already (root makes no
  // directory it names), and one every user may write (/tmp) would let any of them plant the
  // agents' locks there.
  struct stat info {};
  facts.socket_dir_usable = !facts.socket_dir.empty() && facts.socket_dir.front() == '/' &&
                            lstat(facts.socket_dir.c_str(), &info) == 0 && S_ISDIR(info.st_mode) &&
                            (info.st_mode & S_IWOTH) == 0;
}

// A file of the data directory's owner, never one a planted link leads to and never one of
// another user's: root copies a password out of it into tandem's password file.
std::optional<std::string> read_owners_file(const std::string& path, const std::string& owner) {
  struct passwd* user = getpwnam(owner.c_str());
  if (user == nullptr) return std::nullopt;
  auto file = open_file_nofollow(path, O_RDONLY);
  if (!file) return std::nullopt;
  struct stat info {};
  if (fstat(file->get(), &info) != 0 || info.st_uid != user->pw_uid) return std::nullopt;
  std::string content;
  char buffer[4096];
  for (ssize_t got; (got = ::read(file->get(), buffer, sizeof(buffer))) > 0;) {
    content.append(buffer, static_cast<std::size_t>(got));
  }
  return content;
}

// A standby's replication password kept out of its primary_conninfo: in the password file the
// conninfo names (Patroni keeps one) or libpq's default, the OS user's ~/.pgpass.
void find_upstream_password(ServerFacts& facts) {
  if (facts.upstream.contains("password") || facts.upstream.empty()) return;
  auto value = [&](const char* key, std::string fallback) {
    auto found = facts.upstream.find(key);
    return found == facts.upstream.end() || found->second.empty() ? fallback : found->second;
  };
  std::string path = value("passfile", "");
  if (path.empty()) {
    struct passwd* user = getpwnam(facts.os_user.c_str());
    if (user == nullptr) return;
    path = std::string(user->pw_dir) + "/.pgpass";
  }
  auto text = read_owners_file(path, facts.os_user);
  if (!text) return;
  std::string host = value("host", value("hostaddr", "localhost"));
  if (host.front() == '/') host = "localhost";  // as libpq matches a socket directory
  auto password = pgpass_lookup(*text, {.host = host,
                                        .port = value("port", "5432"),
                                        .database = "replication",
                                        .user = value("user", facts.os_user)});
  if (password) facts.upstream["password"] = *password;
}

}  // namespace

Result<ServerFacts> read_server_facts(const std::string& data_dir, const PgBinaries& binaries,
                                      ProcessRunner& runner) {
  std::error_code error;
  auto canonical = std::filesystem::canonical(data_dir, error);
  if (error || !std::filesystem::is_directory(canonical, error)) {
    return fail(ErrorCode::kNotFound, fmt::format("{} is not a directory", data_dir));
  }
  ServerFacts facts{.data_dir = canonical.string()};
  if (!std::filesystem::exists(canonical / "PG_VERSION", error)) {
    return fail(ErrorCode::kNotFound,
                fmt::format("{} is not a PostgreSQL data directory (no PG_VERSION)", data_dir));
  }
  facts.pg_version = first_line(facts.data_dir + "/PG_VERSION");
  facts.os_user = owner_of(facts.data_dir);
  read_postmaster_pid(facts.data_dir, facts);
  facts.standby = std::filesystem::exists(canonical / "standby.signal", error);
  facts.config_in_data_dir = std::filesystem::exists(canonical / "postgresql.conf", error);
  facts.managed_by_tandem = std::filesystem::exists(canonical / kTandemConfName, error);
  facts.patroni_files = std::filesystem::exists(canonical / "patroni.dynamic.json", error);
  // As the directory's owner: root reads nothing there that its owner could not.
  std::optional<std::string> owner;
  if (!facts.os_user.empty() && facts.os_user != "root") owner = facts.os_user;
  auto output = runner.run({.program = binaries.path("pg_controldata"),
                            .args = {facts.data_dir},
                            .run_as = owner,
                            .timeout = std::chrono::seconds(30)});
  if (!output) return std::unexpected(output.error());
  if (output->exit_code != 0) {
    return fail(ErrorCode::kFailed,
                fmt::format("pg_controldata {} failed: {}", facts.data_dir, output->output));
  }
  auto control = parse_control_data(output->output);
  if (!control) return fail_with_context(control.error(), "pg_controldata " + facts.data_dir);
  facts.system_identifier = control->system_identifier;
  facts.data_checksums = control->data_checksums;
  facts.timeline = control->checkpoint_timeline;
  facts.wal_level = control->wal_level;
  facts.max_wal_senders = control->max_wal_senders;
  facts.listen = "localhost";  // PostgreSQL's default
  // In the order the server reads them: postgresql.conf, tandem.conf (included last, once
  // adopted), postgresql.auto.conf; the last that sets a value wins.
  for (const char* file : {"postgresql.conf", kTandemConfName, "postgresql.auto.conf"}) {
    std::string path = facts.data_dir + "/" + file;
    if (auto conninfo = conf_string(path, "primary_conninfo")) {
      auto parsed = parse_conninfo(*conninfo);
      if (!parsed) {
        return fail(ErrorCode::kInvalidArgument,
                    fmt::format("primary_conninfo in {} does not parse", path));
      }
      facts.upstream = *parsed;
    }
    if (auto slot = conf_string(path, "primary_slot_name")) facts.slot = *slot;
    if (auto listen = conf_string(path, "listen_addresses")) facts.listen = *listen;
  }
  find_upstream_password(facts);
  return facts;
}

Result<std::string> pg_major_version(const PgBinaries& binaries, ProcessRunner& runner) {
  auto output = runner.run({.program = binaries.path("postgres"),
                            .args = {"--version"},
                            .timeout = std::chrono::seconds(30)});
  if (!output) return std::unexpected(output.error());
  static const std::regex version(R"(\(PostgreSQL\) (\d+))");
  std::smatch match;
  if (output->exit_code != 0 || !std::regex_search(output->output, match, version)) {
    return fail(ErrorCode::kFailed, "postgres --version said: " + output->output);
  }
  return match[1].str();
}

}  // namespace tandem
