// Whether a TCP port is free, checked the way PostgreSQL will use it: by binding it.
#pragma once

#include <optional>
#include <string>

namespace tandem {

// True when something already listens on host:port (or the address cannot be bound).
bool port_in_use(const std::string& host, int port);

// The first of `count` consecutive ports on `host`, picked at random in 20000-60000, that are
// all free now; nullopt after many tries. For tests and benchmarks that start servers.
std::optional<int> find_free_ports(const std::string& host, int count);

}  // namespace tandem
