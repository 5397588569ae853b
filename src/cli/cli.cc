#include <fmt/format.h>
#include <fmt/ranges.h>

#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/log.h"
#include "proc/heap.h"

namespace tandem {
namespace {

// CLI11 answers a misspelt command with only "A subcommand is required": name it instead.
std::optional<std::string> unknown_command(CLI::App& app, int argc, char** argv) {
  for (int index = 1; index < argc; ++index) {
    std::string_view arg = argv[index];
    if (arg == "-c" || arg == "--config") {
      ++index;  // its value
      continue;
    }
    if (arg.starts_with("-")) continue;
    std::vector<std::string> names;
    for (const CLI::App* command : app.get_subcommands([](CLI::App*) { return true; })) {
      if (command->check_name(std::string(arg))) return std::nullopt;
      names.push_back(command->get_name());
    }
    return fmt::format("unknown command '{}' (commands: {})", arg, fmt::join(names, ", "));
  }
  return std::nullopt;
}

// Parses the command line and runs the command's callback, but for a command that runs once
// the parser is gone (CliState::after_parse). Its exit code, if it ends here.
std::optional<int> parse_and_run(CliState& state, int argc, char** argv) {
  CLI::App app{"tandem: PostgreSQL streaming replication made effortless and safe"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("tandem ") + TANDEM_VERSION,
                       "Print tandem's version and exit");
  app.add_option("-c,--config", state.options.config_path,
                 "Cluster config (default: $TANDEM_CONFIG, ./tandem.yaml, "
                 "./tandem-local/tandem.yaml)");
  app.add_flag("-v,--verbose", state.options.verbose, "Log every program tandem runs");
  app.parse_complete_callback([&state] { init_logging(state.options.verbose); });
  add_init_command(app, state);
  add_clone_command(app, state);
  add_status_command(app, state);
  add_promote_command(app, state);
  add_rejoin_command(app, state);
  add_reinit_command(app, state);
  add_slot_command(app, state);
  add_local_command(app, state);
  add_agent_command(app, state);
  add_history_command(app, state);
  add_control_commands(app, state);
  add_dsn_command(app, state);
  add_adopt_command(app, state);
  add_restart_command(app, state);
  add_reload_command(app, state);
  add_member_command(app, state);
  add_backup_command(app, state);
  add_repository_command(app, state);
  add_config_command(app, state);
  if (auto unknown = unknown_command(app, argc, argv)) {
    fmt::print(stderr, "tandem: error: {}\n", *unknown);
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : 2;
  }
  return std::nullopt;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CliState state;
  if (auto code = parse_and_run(state, argc, argv)) return *code;
  if (state.after_parse) {
    return_free_heap();  // the parser's pages, free now
    state.result = state.after_parse();
  }
  if (!state.result) {
    fmt::print(stderr, "tandem: error: {}\n", state.result.error().message);
    return 1;
  }
  return 0;
}

}  // namespace tandem
