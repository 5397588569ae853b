#include "pg/pg_binaries.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>

namespace tandem {
namespace {

constexpr std::array kPrograms = {"postgres",      "initdb",    "pg_ctl",
                                  "pg_basebackup", "pg_rewind", "pg_controldata"};

std::string missing_program(const std::string& dir) {
  for (const char* program : kPrograms) {
    if (access((dir + "/" + program).c_str(), X_OK) != 0) return program;
  }
  return "";
}

std::string from_pg_config(ProcessRunner& runner) {
  for (const char* pg_config : {"/usr/bin/pg_config", "/usr/local/bin/pg_config"}) {
    if (access(pg_config, X_OK) != 0) continue;
    auto result = runner.run(
        {.program = pg_config, .args = {"--bindir"}, .timeout = std::chrono::seconds(10)});
    if (result && result->exit_code == 0) return last_line(result->output);
  }
  return "";
}

std::string newest_debian_bin_dir() {
  std::error_code error;
  int best_version = -1;
  std::string best;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", error)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::string bin = entry.path().string() + "/bin";
    if (std::stoi(name) > best_version && missing_program(bin).empty()) {
      best_version = std::stoi(name);
      best = bin;
    }
  }
  return best;
}

}  // namespace

Result<PgBinaries> find_pg_binaries(const std::string& configured, ProcessRunner& runner) {
  std::vector<std::string> candidates;
  if (!configured.empty()) {
    candidates.push_back(configured);
  } else {
    candidates.push_back(from_pg_config(runner));
    candidates.push_back(newest_debian_bin_dir());
  }
  for (const std::string& dir : candidates) {
    if (!dir.empty() && missing_program(dir).empty()) return PgBinaries{dir};
  }
  if (!configured.empty()) {
    return fail(ErrorCode::kNotFound,
                fmt::format("PostgreSQL server programs not found: pg_bin {} lacks {}; fix pg_bin "
                            "in tandem.yaml or install them with `apt-get install postgresql-15`",
                            configured, missing_program(configured)));
  }
  return fail(ErrorCode::kNotFound,
              "PostgreSQL server programs not found (asked pg_config, looked in "
              "/usr/lib/postgresql/*/bin): install them with `apt-get install postgresql-15`, or "
              "set pg_bin in tandem.yaml");
}

}  // namespace tandem
