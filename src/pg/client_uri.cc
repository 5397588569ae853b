#include "pg/client_uri.h"

#include <fmt/format.h>

#include <array>
#include <utility>

namespace tandem {
namespace {

// RFC 3986's unreserved characters stay; every other byte is percent-encoded.
std::string percent_encoded(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    out += unreserved ? std::string(1, static_cast<char>(c)) : fmt::format("%{:02X}", c);
  }
  return out;
}

// An IPv6 address goes in brackets in a URI.
std::string uri_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : percent_encoded(host);
}

}  // namespace

Result<std::string> client_uri(const ClusterConfig& config, const ClientUriOptions& options) {
  // tandem's names for libpq's target_session_attrs (PostgreSQL 14 and later).
  constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kRoles{{
      {"primary", "read-write"},
      {"standby", "standby"},
      {"prefer-standby", "prefer-standby"},
      {"any", "any"},
  }};
  std::string_view attrs;
  for (const auto& [role, value] : kRoles) {
    if (role == options.role) attrs = value;
  }
  if (attrs.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("unknown role '{}' (roles: primary, standby, prefer-standby, any)",
                            options.role));
  }
  if (options.dbname.empty()) {
    return fail(ErrorCode::kInvalidArgument, "the database name is empty");
  }
  std::string hosts;
  for (const NodeConfig& node : config.nodes) {
    if (!hosts.empty()) hosts += ",";
    hosts += fmt::format("{}:{}", uri_host(node.host), node.port);
  }
  std::string user = options.user.empty() ? "" : percent_encoded(options.user) + "@";
  // With postgresql.tls the servers take TCP connections over TLS only: the client checks
  // their certificates as tandem does.
  std::string tls = config.tls.enabled()
                        ? "&sslmode=verify-full&sslrootcert=" + percent_encoded(config.tls.ca_file)
                        : "";
  return fmt::format("postgresql://{}{}/{}?target_session_attrs={}{}", user, hosts,
                     percent_encoded(options.dbname), attrs, tls);
}

}  // namespace tandem
