#include "proc/service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

namespace tandem {
namespace {

// The longest status sent: systemd drops a datagram longer than its buffer (4 KiB), READY=1
// with it.
constexpr std::size_t kLongestStatus = 2048;

// A status is one line: a newline would start another assignment of the protocol, and systemd
// drops a datagram that holds a NUL, READY=1 with it.
std::string one_line(std::string_view text) {
  std::string line(text.substr(0, kLongestStatus));
  for (char& c : line) {
    if (c == '\n' || c == '\r' || c == '\0') c = ' ';
  }
  return line;
}

// One datagram to the AF_UNIX socket $NOTIFY_SOCKET names: a path, or after "@" a name in
// Linux's abstract namespace; the kernel adds the sender's credentials, which the service manager
// asks for (sd_notify(3), whose protocol systemd counts among its stable interfaces). The
// variable stays set, for the next message. Whether it was sent is not asked: a service manager
// that went away is no reason to stop the agent, nor one whose queue is full a reason to wait.
// libsystemd did this before, and brought six more libraries into every agent's memory (issue
// 19.2).
void tell_manager(const std::string& message) {
  const char* where = std::getenv("NOTIFY_SOCKET");
  if (where == nullptr || (where[0] != '/' && where[0] != '@')) return;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::size_t length = std::strlen(where);
  if (length < 2 || length > sizeof address.sun_path) return;
  std::memcpy(address.sun_path, where, length);
  if (where[0] == '@') address.sun_path[0] = '\0';
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  (void)sendto(fd, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
               reinterpret_cast<const sockaddr*>(&address),
               static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length));
  close(fd);
}

}  // namespace

void ServiceNotifier::ready(std::string_view status) const {
  tell_manager("READY=1\nSTATUS=" + one_line(status));
}

void ServiceNotifier::reloading() const { tell_manager("RELOADING=1"); }

void ServiceNotifier::stopping(std::string_view status) const {
  tell_manager("STOPPING=1\nSTATUS=" + one_line(status));
}

void ServiceNotifier::status(std::string_view status) const {
  tell_manager("STATUS=" + one_line(status));
}

bool ServiceNotifier::listening() { return std::getenv("NOTIFY_SOCKET") != nullptr; }

}  // namespace tandem
