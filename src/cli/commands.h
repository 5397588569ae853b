// The subcommands of `tandem`, one file each. Every add_* registers its subcommand; when it
// runs, its outcome lands in CliState::result, which main turns into an exit status.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/session.h"

namespace tandem {

struct CliState {
  GlobalOptions options;
  Status result;
  // A command that runs for long (the agent) runs once the parser is gone: the parser of every
  // command and option kept some 300 KiB of the agent's heap for its whole life (issue 19.2).
  std::function<Status()> after_parse;
};

// Like with_session, for a command that needs more than the Context (the process runner).
template <typename Action>
Status with_session_of(CliState& state, Action action) {
  auto session = Session::open(state.options);
  if (!session) return std::unexpected(session.error());
  return action(**session);
}

// Opens the session of the command line's config and runs `action` on its Context.
template <typename Action>
Status with_session(CliState& state, Action action) {
  return with_session_of(state, [&](Session& session) { return action(session.context()); });
}

void add_init_command(CLI::App& app, CliState& state);
void add_clone_command(CLI::App& app, CliState& state);
void add_status_command(CLI::App& app, CliState& state);
void add_promote_command(CLI::App& app, CliState& state);
void add_rejoin_command(CLI::App& app, CliState& state);
void add_reinit_command(CLI::App& app, CliState& state);
void add_slot_command(CLI::App& app, CliState& state);
void add_local_command(CLI::App& app, CliState& state);
void add_agent_command(CLI::App& app, CliState& state);
void add_repository_command(CLI::App& app, CliState& state);
void add_history_command(CLI::App& app, CliState& state);
void add_control_commands(CLI::App& app, CliState& state);
void add_dsn_command(CLI::App& app, CliState& state);
void add_adopt_command(CLI::App& app, CliState& state);
void add_restart_command(CLI::App& app, CliState& state);
void add_reload_command(CLI::App& app, CliState& state);
void add_member_command(CLI::App& app, CliState& state);
void add_backup_command(CLI::App& app, CliState& state);
void add_config_command(CLI::App& app, CliState& state);

// tandem switchover --to NODE (empty: the agents' best candidate), waiting until it is done.
Status request_switchover(Context& context, const std::string& to);

// Parses argv and runs the command. Returns the process exit status: 0 success, 1 the
// operation failed (one line on stderr says why), 2 bad usage.
int run_cli(int argc, char** argv);

}  // namespace tandem
