// tandem: wiring only; everything happens in cli/.
#include <signal.h>

#include "cli/commands.h"

int main(int argc, char** argv) {
  // A peer that closes a connection (an HTTP client, etcd, another agent, a TLS handshake
  // refused) must be an error on that connection, not the end of the process.
  signal(SIGPIPE, SIG_IGN);
  return tandem::run_cli(argc, argv);
}
