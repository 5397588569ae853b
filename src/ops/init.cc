#include "ops/init.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

#include "ops/backup.h"
#include "ops/find_primary.h"
#include "pg/admin_connection.h"
#include "pg/node_files.h"
#include "pg/roles.h"
#include "pg/server_files.h"
#include "proc/safe_file.h"
#include "proc/secret_file.h"

namespace tandem {
namespace {

// The password of each role tandem creates: kept from an existing password file, otherwise
// new. The file is written only when something was added.
Result<std::vector<Credential>> ensure_passwords(Context& context) {
  const ClusterConfig& config = context.config;
  std::vector<std::string> roles = {config.replication.user};
  if (config.app) roles.push_back(config.app->user);
  // Nodes on several machines reach each other's superuser over TCP (pg_rewind, slots).
  if (config.on_several_machines()) roles.push_back(config.superuser);
  std::string existing = read_file(config.password_file).value_or("");
  std::vector<Credential> credentials;
  bool added = false;
  for (const std::string& role : roles) {
    if (auto password = find_password(existing, role)) {
      credentials.push_back({role, *password});
      continue;
    }
    auto password = random_password();
    if (!password) return std::unexpected(password.error());
    credentials.push_back({role, *password});
    added = true;
  }
  if (added) {
    if (auto ok = write_owned_file(config.password_file, render_passfile(credentials),
                                   context.os_user, 0600);
        !ok) {
      return std::unexpected(ok.error());
    }
    context.report(fmt::format("passwords for {} kept in {} (mode 0600)", fmt::join(roles, ", "),
                               config.password_file));
  }
  return credentials;
}

Status write_server_files(Context& context, const NodeConfig& node) {
  const ClusterConfig& config = context.config;
  std::vector<std::string> ident_users = {config.os_user, "root"};
  for (const auto& [name, content] : {std::pair{"pg_hba.conf", render_pg_hba(config)},
                                      {"pg_ident.conf", render_pg_ident(config, ident_users)}}) {
    if (auto ok = write_owned_file(node.data_dir + "/" + name, content, context.os_user, 0600);
        !ok) {
      return ok;
    }
  }
  // The data directory belongs to the OS user: never append through a link planted there.
  std::string conf_path = node.data_dir + "/postgresql.conf";
  auto conf = open_file_nofollow(conf_path, O_WRONLY | O_APPEND);
  if (!conf) return std::unexpected(conf.error());
  std::string include =
      fmt::format("\n# tandem's settings ({}) come last.\n{}\n", kTandemConfName, kIncludeLine);
  if (::write(conf->get(), include.data(), include.size()) !=
      static_cast<ssize_t>(include.size())) {
    return fail(ErrorCode::kFailed, "cannot append to " + conf_path);
  }
  // A new cluster's first start creates its roles, and no standby exists yet to wait for:
  // strict synchronous mode begins once the leader's agent names '*' (its sync manager).
  ClusterConfig first_start = context.config;
  first_start.ha.synchronous_mode_strict = false;
  return write_node_files(first_start, context.os_user, node, nullptr);
}

Status create_roles(Context& context, const NodeConfig& node,
                    const std::vector<Credential>& credentials) {
  const ClusterConfig& config = context.config;
  // Over the socket: the superuser has no password yet.
  auto connection = connect_local_admin(config, node);
  if (!connection) return std::unexpected(connection.error());
  for (const Credential& credential : credentials) {
    // Only the SCRAM verifier travels; the password itself never reaches the server or a log.
    auto verifier = connection->encrypt_password(credential.password, credential.role);
    if (!verifier) return std::unexpected(verifier.error());
    bool replication = credential.role == config.replication.user;
    auto ok = credential.role == config.superuser
                  ? set_role_password(*connection, credential.role, *verifier)
                  : create_login_role(*connection, credential.role, replication, *verifier);
    if (!ok) {
      return fail_with_context(ok.error(), "creating role " + credential.role);
    }
    context.report(
        credential.role == config.superuser
            ? fmt::format("set the password of {} (nodes on several machines)", credential.role)
            : fmt::format("created role {}{}", credential.role,
                          replication ? " (REPLICATION)" : ""));
  }
  if (config.app) {
    if (auto ok = create_database(*connection, config.app->database, config.app->user); !ok) {
      return fail_with_context(ok.error(), "creating database " + config.app->database);
    }
    context.report(
        fmt::format("created database {} owned by {}", config.app->database, config.app->user));
  }
  return {};
}

}  // namespace

Status init_primary(Context& context, const NodeConfig& node) {
  if (auto ok = check_new_node(node); !ok) return ok;
  auto other_primary = find_primary(context, node.name);
  if (other_primary) {
    return fail(ErrorCode::kConflict,
                fmt::format("{} already runs as this cluster's primary: clone {} from it instead "
                            "(tandem clone {})",
                            (*other_primary)->name, node.name, node.name));
  }
  // With a repository host, the repository is there, and so is the stanza: `tandem repository`
  // makes it once this primary answers. Either way, a stanza there already is another
  // database's, and the repository host must answer.
  bool local_repository = context.config.backup.enabled() && !context.config.backup.remote();
  if (local_repository) {
    if (auto ok = check_backup_repository(context.config, context.os_user); !ok) return ok;
  }
  if (context.config.backup.enabled() && context.runner != nullptr) {
    if (auto ok = check_stanza_free(context.config, *context.runner); !ok) return ok;
  }
  if (auto ok = prepare_dirs(context.config, context.os_user, node); !ok) return ok;
  auto credentials = ensure_passwords(context);
  if (!credentials) return std::unexpected(credentials.error());
  if (auto ok = context.controller.initdb(node); !ok) return ok;
  context.report(fmt::format("initdb {} (data checksums, UTF-8, no locale)", node.data_dir));
  if (auto ok = write_server_files(context, node); !ok) return ok;
  if (auto ok = context.controller.start(node); !ok) return ok;
  context.report(fmt::format("started {} as primary on {}:{}", node.name, node.host, node.port));
  if (auto ok = create_roles(context, node, *credentials); !ok) return ok;
  if (!local_repository || context.runner == nullptr) return {};
  // Its WAL is archived from now on: the stanza must exist for archive-push to succeed.
  if (auto ok = BackRest(context.config, *context.runner).create_stanza(node); !ok) return ok;
  context.report(fmt::format("created pgBackRest stanza {} in {}", context.config.stanza(),
                             context.config.backup.repository));
  return {};
}

}  // namespace tandem
