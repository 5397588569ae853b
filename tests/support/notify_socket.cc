#include "notify_socket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>

namespace tandem::testing {

NotifySocket::NotifySocket(std::string path) : path_(std::move(path)) {
  std::filesystem::remove(path_);
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path_.copy(address.sun_path, sizeof(address.sun_path) - 1);
  EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << path_;
}

NotifySocket::~NotifySocket() {
  close(fd_);
  std::filesystem::remove(path_);
}

std::string NotifySocket::next(std::chrono::milliseconds timeout) {
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  timeval wait{.tv_sec = micros / 1000000, .tv_usec = micros % 1000000};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
  char buffer[4096];
  ssize_t got = recv(fd_, buffer, sizeof(buffer), 0);
  return got > 0 ? std::string(buffer, static_cast<std::size_t>(got)) : "";
}

std::vector<std::string> NotifySocket::until(const std::string& wanted,
                                             std::chrono::seconds timeout) {
  std::vector<std::string> received;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string datagram = next(std::chrono::milliseconds(200));
    if (datagram.empty()) continue;
    received.push_back(datagram);
    if (datagram.find(wanted) != std::string::npos) break;
  }
  return received;
}

}  // namespace tandem::testing
