// The test binaries, like tandem itself (src/main.cc), treat a closed connection as an error on
// that connection: without this, a peer closing a TLS connection kills the whole test run.
#include <signal.h>

namespace {

const bool kSigpipeIgnored = [] {
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

}  // namespace
