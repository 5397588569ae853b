#include "proc/service_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <string>

namespace tandem {
namespace {

// A status is one line: a newline would start another assignment of the protocol.
std::string one_line(std::string_view text) {
  std::string line(text);
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return line;
}

void send(const std::string& message) {
  // 0: the variable stays set, for the next message; the result says only whether it was sent,
  // and a service manager that went away is no reason to stop the agent.
  (void)sd_notify(0, message.c_str());
}

}  // namespace

void ServiceNotifier::ready(std::string_view status) const {
  send("READY=1\nSTATUS=" + one_line(status));
}

void ServiceNotifier::reloading() const { send("RELOADING=1"); }

void ServiceNotifier::stopping(std::string_view status) const {
  send("STOPPING=1\nSTATUS=" + one_line(status));
}

void ServiceNotifier::status(std::string_view status) const { send("STATUS=" + one_line(status)); }

bool ServiceNotifier::listening() { return std::getenv("NOTIFY_SOCKET") != nullptr; }

}  // namespace tandem
