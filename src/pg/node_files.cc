#include "pg/node_files.h"

#include <fmt/format.h>

#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include "pg/server_files.h"
#include "proc/ports.h"
#include "proc/safe_file.h"

namespace tandem {

bool is_absent_or_empty(const std::string& dir) {
  std::error_code error;
  if (!std::filesystem::exists(dir, error)) return true;
  return std::filesystem::is_directory(dir, error) && std::filesystem::is_empty(dir, error);
}

Status check_new_node(const NodeConfig& node) {
  if (!is_absent_or_empty(node.data_dir)) {
    return fail(ErrorCode::kAlreadyExists,
                fmt::format("data directory {} of {} already exists and is not empty: tandem never "
                            "overwrites one; move it away or choose another data_dir",
                            node.data_dir, node.name));
  }
  return check_port_free(node.host, node.port, node.name);
}

Status prepare_dirs(const ClusterConfig& config, const OsUser& os_user, const NodeConfig& node) {
  std::string parent = std::filesystem::path(node.data_dir).parent_path().string();
  // tandem makes the data directory itself; PostgreSQL writes sockets and logs.
  std::vector<std::pair<std::string, bool>> needs = {
      {parent, false}, {config.socket_dir, true}, {config.log_dir, true}};
  for (const auto& [dir, write] : needs) {
    if (!user_can_use_dir(dir, os_user, write)) {
      return fail(ErrorCode::kPermissionDenied,
                  fmt::format("OS user {} cannot use {}: a directory on its path is closed to it",
                              os_user.name, dir));
    }
  }
  for (const auto& [dir, write] : needs) {
    if (auto ok = ensure_owned_dir(dir, os_user, 0755); !ok) return ok;
  }
  return ensure_owned_dir(node.data_dir, os_user, 0700, /*take_existing=*/true);
}

Status write_node_files(const ClusterConfig& config, const OsUser& os_user, const NodeConfig& node,
                        const NodeConfig* upstream_primary, ServerRole role,
                        const std::vector<std::string>& synchronous_standbys, int synchronous_any) {
  std::optional<Upstream> upstream;
  if (upstream_primary != nullptr) {
    upstream = Upstream{upstream_conninfo(config, *upstream_primary, node.name), node.name};
  }
  if (auto ok = write_owned_file(
          node.data_dir + "/" + kTandemConfName,
          render_tandem_conf(config, node, upstream, synchronous_standbys, synchronous_any),
          os_user, 0600);
      !ok) {
    return ok;
  }
  if (config.backup.enabled()) {
    if (auto ok = write_owned_file(pgbackrest_conf_path(node), render_pgbackrest_conf(config, node),
                                   os_user, 0600);
        !ok) {
      return ok;
    }
  }
  std::string signal = node.data_dir + "/standby.signal";
  if (role == ServerRole::kPrimary) return remove_file_nofollow(signal);
  return write_owned_file(signal, "", os_user, 0600);
}

}  // namespace tandem
