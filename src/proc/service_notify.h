// The service manager's notify protocol (systemd's sd_notify(3), spoken directly): a service
// of Type=notify says when it is ready, reloading or stopping, and a status line, in datagrams to
// the socket $NOTIFY_SOCKET names. Without that variable (not started by systemd) nothing is sent.
#pragma once

#include <string_view>

namespace tandem {

class ServiceNotifier {
 public:
  // READY=1 with a status line: the service does what it is for from now on.
  void ready(std::string_view status) const;
  // RELOADING=1: the configuration is being read again; ready() follows.
  void reloading() const;
  // STOPPING=1: the service is shutting down.
  void stopping(std::string_view status) const;
  // STATUS=: one line for `systemctl status`.
  void status(std::string_view status) const;
  // Whether a service manager listens (NOTIFY_SOCKET is set).
  static bool listening();
};

}  // namespace tandem
