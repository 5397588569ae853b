// tandem repository: the repository host's service (agent/repository_host.h) until SIGTERM.
#include <signal.h>

#include <atomic>

#include "agent/repository_host.h"
#include "cli/commands.h"

namespace tandem {
namespace {

std::atomic<bool> stop_repository{false};

void request_repository_stop(int) { stop_repository.store(true); }

}  // namespace

void add_repository_command(CLI::App& app, CliState& state) {
  auto* repository = app.add_subcommand(
      "repository",
      "Run the repository host (backup.repository_host) until stopped: pgBackRest's TLS server "
      "for the nodes, the stanza, and the scheduled backups");
  repository->callback([&state] {
    state.result = with_session_of(state, [](Session& session) {
      struct sigaction action {};
      action.sa_handler = request_repository_stop;
      sigemptyset(&action.sa_mask);
      sigaction(SIGTERM, &action, nullptr);
      sigaction(SIGINT, &action, nullptr);
      ServiceNotifier service;
      return run_repository_host(session.config(), session.context().os_user, session.runner(),
                                 session.clock(), service, stop_repository);
    });
  });
}

}  // namespace tandem
