// Whether a TCP port is free, checked the way PostgreSQL will use it: by binding it.
#pragma once

#include <string>

namespace tandem {

// True when something already listens on host:port (or the address cannot be bound).
bool port_in_use(const std::string& host, int port);

}  // namespace tandem
