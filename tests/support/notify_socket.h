// A stand-in for systemd's notify socket ($NOTIFY_SOCKET): a Unix datagram socket bound at a
// path, removed when the object goes.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace tandem::testing {

class NotifySocket {
 public:
  explicit NotifySocket(std::string path);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& path() const { return path_; }
  // The next datagram, or "" after `timeout`.
  std::string next(std::chrono::milliseconds timeout = std::chrono::seconds(2));
  // Every datagram until one contains `wanted` (returned last), or until `timeout`.
  std::vector<std::string> until(const std::string& wanted, std::chrono::seconds timeout);

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace tandem::testing
