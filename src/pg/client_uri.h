// The connection string clients use to reach the cluster whatever node leads: every node in one
// URI, libpq trying them in turn and keeping the first whose role fits (target_session_attrs).
#pragma once

#include <string>

#include "common/result.h"
#include "core/cluster_config.h"

namespace tandem {

struct ClientUriOptions {
  // primary (read-write), standby (a server in recovery), prefer-standby, any.
  std::string role = "primary";
  std::string dbname = "postgres";
  std::string user;  // empty: libpq's default (the OS user)
};

// postgresql://HOST:PORT,HOST:PORT/DBNAME?target_session_attrs=...; a role it does not know is
// a kInvalidArgument naming the ones it does.
Result<std::string> client_uri(const ClusterConfig& config, const ClientUriOptions& options);

}  // namespace tandem
