// tandem dsn: the connection string for applications, every node in it.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/session.h"
#include "pg/client_uri.h"

namespace tandem {

void add_dsn_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand(
      "dsn", "Print a connection string that reaches the primary (or a standby) wherever it runs");
  auto options = std::make_shared<ClientUriOptions>();
  command->add_option("--role", options->role,
                      "primary (default), standby, prefer-standby or any (target_session_attrs)");
  command->add_option("--dbname", options->dbname, "Database (default: postgres)");
  command->add_option("--user", options->user, "Role to connect as (default: libpq's)");
  command->callback([&state, options] {
    auto path = resolve_config_path(state.options.config_path);
    if (!path) {
      state.result = std::unexpected(path.error());
      return;
    }
    auto config = load_config_file(*path);
    if (!config) {
      state.result = std::unexpected(config.error());
      return;
    }
    auto uri = client_uri(*config, *options);
    if (!uri) {
      state.result = std::unexpected(uri.error());
      return;
    }
    fmt::print("{}\n", *uri);
  });
}

}  // namespace tandem
