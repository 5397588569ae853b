#include "cli/session.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/member_change.h"
#include "dcs/cluster_layout.h"
#include "ops/store_access.h"
#include "proc/os_user.h"

namespace tandem {

Result<std::string> resolve_config_path(const std::string& option) {
  if (!option.empty()) return option;
  if (const char* env = std::getenv("TANDEM_CONFIG"); env != nullptr && *env != '\0') return env;
  for (const char* candidate : {"tandem.yaml", "tandem-local/tandem.yaml"}) {
    if (std::filesystem::exists(candidate)) return std::string(candidate);
  }
  return fail(ErrorCode::kNotFound,
              "no tandem.yaml here: pass --config FILE, set TANDEM_CONFIG, or create a local "
              "cluster with `tandem local up`");
}

Result<ClusterConfig> load_config_file(const std::string& path) {
  // The config names the files root writes and the programs it runs: root reads only one that
  // no other user can change.
  struct stat info {};
  if (running_as_root() && stat(path.c_str(), &info) == 0 &&
      (info.st_uid != 0 || (info.st_mode & (S_IWGRP | S_IWOTH)) != 0)) {
    return fail(ErrorCode::kPermissionDenied,
                fmt::format("refusing {}: tandem runs as root and {} could change it (it names "
                            "the files root writes): `chown root {} && chmod go-w {}`",
                            path, info.st_uid != 0 ? "its owner" : "others", path, path));
  }
  auto text = read_file(path);
  if (!text) return std::unexpected(text.error());
  std::error_code error;
  std::string base_dir =
      std::filesystem::absolute(std::filesystem::path(path), error).parent_path().string();
  auto config = parse_config(*text, base_dir);
  if (!config) return fail_with_context(config.error(), path);
  // Two spellings of one directory, or a link to another node's: compared where they lead.
  std::vector<NodeConfig> resolved = config->nodes;
  for (NodeConfig& node : resolved) {
    auto canonical = std::filesystem::weakly_canonical(node.data_dir, error);
    if (!error) node.data_dir = canonical.string();
  }
  if (auto ok = validate_data_dirs(resolved); !ok) return fail_with_context(ok.error(), path);
  return config;
}

Result<std::unique_ptr<Session>> Session::open(const GlobalOptions& options) {
  auto path = resolve_config_path(options.config_path);
  if (!path) return std::unexpected(path.error());
  auto config = load_config_file(*path);
  if (!config) return std::unexpected(config.error());
  std::error_code error;
  auto session = open(std::move(*config), std::filesystem::absolute(*path, error).string());
  if (session) (*session)->take_member_list();
  return session;
}

// Several machines: once the members changed at run time (`tandem member`), the list in the
// store is the cluster's, tandem.yaml's nodes perhaps older. The store out of reach: the
// file's list, as before.
void Session::take_member_list() {
  if (!config_.on_several_machines()) return;
  auto store = open_cluster_store(config_, clock_);
  if (!store) return;
  ClusterLayout layout(config_.name);
  auto snapshot = (*store)->read(layout.member_list());
  if (!snapshot) return;
  if (const StoredValue* stored = snapshot->find(layout.member_list())) {
    if (auto list = decode_member_list(stored->value)) config_ = with_member_list(config_, *list);
  }
}

Result<std::unique_ptr<Session>> Session::open(ClusterConfig config, std::string config_path) {
  auto os_user = lookup_os_user(config.os_user);
  if (!os_user) return std::unexpected(os_user.error());
  if (!running_as_root() && getuid() != os_user->uid) {
    return fail(ErrorCode::kPermissionDenied,
                fmt::format("tandem must run as root or as {}, the OS user that owns PostgreSQL",
                            os_user->name));
  }
  std::unique_ptr<Session> session(new Session(std::move(config)));
  session->config_path_ = std::move(config_path);
  auto binaries = find_pg_binaries(session->config_.pg_bin, session->runner_);
  if (!binaries) return std::unexpected(binaries.error());
  session->binaries_ = std::move(*binaries);
  session->controller_ = std::make_unique<PgNodeController>(
      session->config_, session->binaries_, session->runner_, *os_user, session->clock_);
  session->context_ = std::make_unique<Context>(Context{
      .config = session->config_,
      .os_user = *os_user,
      .controller = *session->controller_,
      .clock = session->clock_,
      .runner = &session->runner_,
      .report = print_step,
  });
  return session;
}

void print_step(const std::string& line) {
  fmt::print("  - {}\n", line);
  std::fflush(stdout);
}

}  // namespace tandem
