#include "proc/ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <random>

namespace tandem {

bool port_in_use(const std::string& host, int port) {
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in6);
  } else {
    return true;  // not an address we can bind: treat as unusable
  }
  int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  // PostgreSQL sets SO_REUSEADDR too, so TIME_WAIT leftovers do not count as "in use".
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  bool in_use = bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0;
  close(fd);
  return in_use;
}

std::optional<int> find_free_ports(const std::string& host, int count) {
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> pick(20000, 60000);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int base = pick(random);
    bool free = true;
    for (int port = base; port < base + count && free; ++port) free = !port_in_use(host, port);
    if (free) return base;
  }
  return std::nullopt;
}

}  // namespace tandem
