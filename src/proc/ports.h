// Whether a TCP port is free, checked the way PostgreSQL will use it: by binding it.
#pragma once

#include <sys/socket.h>

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tandem {

// True when something already listens on host:port (or the address cannot be bound).
// host:port as a socket address (IPv4 or IPv6); nullopt when host is not an IP address.
struct SocketAddress {
  sockaddr_storage address{};
  socklen_t length = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&address); }
};
std::optional<SocketAddress> socket_address(const std::string& host, int port);

bool port_in_use(const std::string& host, int port);

// True when `host` is an IP address of this machine (one a socket can bind): where the command
// runs, the repository host or a node's.
bool is_own_address(const std::string& host);

// Ok when host:port can be bound now. Otherwise one line that says why: the host is not an IP
// address, not an address of this machine, the port is in use, or binding it is not allowed.
// `owner` names whose port it is ("node1", "node1's API").
Status check_port_free(const std::string& host, int port, std::string_view owner);

// The first of `count` consecutive ports on `host`, picked at random from 10000 up to the start
// of the kernel's ephemeral range (net.ipv4.ip_local_port_range), that are all free now; nullopt
// after many tries. For tests and benchmarks that start servers. Below the ephemeral range,
// because a port free now may otherwise be taken a moment later as the local end of any
// outgoing connection (a walreceiver's, an agent's), and the server restarted there refused.
std::optional<int> find_free_ports(const std::string& host, int count);

}  // namespace tandem
