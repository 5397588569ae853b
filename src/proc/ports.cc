#include "proc/ports.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

namespace tandem {

std::optional<SocketAddress> socket_address(const std::string& host, int port) {
  SocketAddress result;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&result.address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&result.address);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    result.length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    result.length = sizeof(sockaddr_in6);
  } else {
    return std::nullopt;
  }
  return result;
}

namespace {

// 0 when host:port could be bound; otherwise the errno of the failure (EINVAL: not an address).
int try_bind(const std::string& host, int port) {
  auto address = socket_address(host, port);
  if (!address) return EINVAL;
  int fd = socket(address->address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  // PostgreSQL sets SO_REUSEADDR too, so TIME_WAIT leftovers do not count as "in use".
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int result = bind(fd, address->get(), address->length) == 0 ? 0 : errno;
  close(fd);
  return result;
}

}  // namespace

bool is_own_address(const std::string& host) {
  // The interfaces' addresses, not a probe by bind(): with net.ipv4.ip_nonlocal_bind (keepalived,
  // HAProxy) any address binds (review).
  auto wanted = socket_address(host, 0);
  if (!wanted) return false;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return false;
  bool found = false;
  for (ifaddrs* entry = list; entry != nullptr && !found; entry = entry->ifa_next) {
    const sockaddr* address = entry->ifa_addr;
    if (address == nullptr || address->sa_family != wanted->address.ss_family) continue;
    if (address->sa_family == AF_INET) {
      found = reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr ==
              reinterpret_cast<const sockaddr_in*>(wanted->get())->sin_addr.s_addr;
    } else if (address->sa_family == AF_INET6) {
      found = std::memcmp(&reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr,
                          &reinterpret_cast<const sockaddr_in6*>(wanted->get())->sin6_addr,
                          sizeof(in6_addr)) == 0;
    }
  }
  freeifaddrs(list);
  return found;
}

bool port_in_use(const std::string& host, int port) { return try_bind(host, port) != 0; }

Status check_port_free(const std::string& host, int port, std::string_view owner) {
  switch (int error = try_bind(host, port)) {
    case 0:
      return {};
    case EINVAL:
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("host '{}' of {} is not an IP address", host, owner));
    case EADDRNOTAVAIL:
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("host {} of {} is not an address of this machine (see `ip addr`): "
                              "it cannot listen there",
                              host, owner));
    case EADDRINUSE:
      return fail(ErrorCode::kConflict,
                  fmt::format("port {}:{} of {} is already in use: stop what listens there or "
                              "choose another port",
                              host, port, owner));
    default:
      return fail(ErrorCode::kFailed, fmt::format("cannot bind port {}:{} of {}: {}", host, port,
                                                  owner, strerror(error)));
  }
}

namespace {

// The first port the kernel hands out as the local end of outgoing connections.
int ephemeral_start() {
  std::ifstream file("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  if (file >> low && low > 0) return low;
  return 32768;  // Linux's default
}

}  // namespace

std::optional<int> find_free_ports(const std::string& host, int count) {
  std::mt19937 random(std::random_device{}());
  int top = ephemeral_start() - count;
  if (top < 10000 + count) top = 60000;  // an unusual range: anywhere, as before
  std::uniform_int_distribution<int> pick(10000, top);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int base = pick(random);
    bool free = true;
    for (int port = base; port < base + count && free; ++port) free = !port_in_use(host, port);
    if (free) return base;
  }
  return std::nullopt;
}

}  // namespace tandem
