// ServiceNotifier against a stand-in for systemd's notify socket: what it sends, and that
// nothing is sent (nor fails) without one.
#include "proc/service_notify.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
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
  // systemd drops a datagram holding a NUL, or longer than its buffer: READY=1 would be lost.
  notifier.status(std::string("a\0b", 3));
  EXPECT_EQ(socket.next(), "STATUS=a b");
  notifier.ready(std::string(10000, 'x'));
  EXPECT_EQ(socket.next(), "READY=1\nSTATUS=" + std::string(2048, 'x'));
  notifier.reloading();
  EXPECT_EQ(socket.next(), "RELOADING=1");
  notifier.stopping("stopping");
  EXPECT_EQ(socket.next(), "STOPPING=1\nSTATUS=stopping");
  unsetenv("NOTIFY_SOCKET");
}

// "@" names a socket in Linux's abstract namespace, as a service manager in a container may.
TEST(ServiceNotifier, SaysReadyOnASocketInTheAbstractNamespace) {
  std::string name = "tandem-notify-test-" + std::to_string(getpid());
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path + 1, name.data(), name.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<const sockaddr*>(&address),
                 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())),
            0);
  setenv("NOTIFY_SOCKET", ("@" + name).c_str(), 1);
  ServiceNotifier().ready("a standby of node1");
  unsetenv("NOTIFY_SOCKET");
  pollfd readable{fd, POLLIN, 0};
  ASSERT_EQ(poll(&readable, 1, 2000), 1);
  char buffer[256];
  ssize_t length = recv(fd, buffer, sizeof buffer, 0);
  close(fd);
  ASSERT_GT(length, 0);
  EXPECT_EQ(std::string(buffer, static_cast<std::size_t>(length)),
            "READY=1\nSTATUS=a standby of node1");
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
  // Names no socket can have: nothing sent, no error (the agent goes on).
  for (const char* unusable : {"", "@", "relative.sock",
                               "/a-path-longer-than-sun_path-allows-"
                               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}) {
    setenv("NOTIFY_SOCKET", unusable, 1);
    notifier.status("still here");
  }
  unsetenv("NOTIFY_SOCKET");
}

}  // namespace
}  // namespace tandem
