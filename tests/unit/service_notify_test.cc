// ServiceNotifier against a stand-in for systemd's notify socket: what it sends, and that
// nothing is sent (nor fails) without one.
#include "proc/service_notify.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "../support/notify_socket.h"

namespace tandem {
namespace {

TEST(ServiceNotifier, SaysReadyStatusAndStoppingOnTheSocketSystemdNames) {
  testing::NotifySocket socket((std::filesystem::temp_directory_path() /
                                ("tandem-notify-" + std::to_string(getpid()) + ".sock"))
                                   .string());
  setenv("NOTIFY_SOCKET", socket.path().c_str(), 1);
  ServiceNotifier notifier;
  EXPECT_TRUE(ServiceNotifier::listening());
  notifier.ready("none: a standby of node1\nSTOPPING=1");  // a second line cannot forge one
  EXPECT_EQ(socket.next(), "READY=1\nSTATUS=none: a standby of node1 STOPPING=1");
  notifier.status("take-over: nobody leads");
  EXPECT_EQ(socket.next(), "STATUS=take-over: nobody leads");
  notifier.reloading();
  EXPECT_EQ(socket.next(), "RELOADING=1");
  notifier.stopping("stopping");
  EXPECT_EQ(socket.next(), "STOPPING=1\nSTATUS=stopping");
  unsetenv("NOTIFY_SOCKET");
}

TEST(ServiceNotifier, OutsideSystemdSendsNothingAndGoesOn) {
  unsetenv("NOTIFY_SOCKET");
  ServiceNotifier notifier;
  EXPECT_FALSE(ServiceNotifier::listening());
  notifier.ready("ready");  // nothing to send to: no error, no crash
  notifier.stopping("stopping");
  // A socket that went away (systemd restarted, say) is no reason to stop either.
  setenv("NOTIFY_SOCKET", "/nonexistent/tandem-notify.sock", 1);
  notifier.status("still here");
  unsetenv("NOTIFY_SOCKET");
}

}  // namespace
}  // namespace tandem
