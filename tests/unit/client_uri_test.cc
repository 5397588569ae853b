// tandem dsn's connection string: every node, the role as target_session_attrs, names encoded.
#include "pg/client_uri.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

ClusterConfig two_nodes() {
  ClusterConfig config;
  config.nodes.push_back({.name = "node1", .host = "10.0.0.1", .port = 5432, .data_dir = "/d1"});
  config.nodes.push_back({.name = "node2", .host = "fe80::2", .port = 5433, .data_dir = "/d2"});
  return config;
}

TEST(ClientUri, EveryNodeWithTheRoleAsTargetSessionAttrs) {
  struct Case {
    ClientUriOptions options;
    std::string uri;
  };
  const Case cases[] = {
      {{}, "postgresql://10.0.0.1:5432,[fe80::2]:5433/postgres?target_session_attrs=read-write"},
      {{.role = "standby", .dbname = "test_app"},
       "postgresql://10.0.0.1:5432,[fe80::2]:5433/test_app?target_session_attrs=standby"},
      {{.role = "prefer-standby", .dbname = "app db", .user = "repl@user"},
       "postgresql://repl%40user@10.0.0.1:5432,[fe80::2]:5433/app%20db"
       "?target_session_attrs=prefer-standby"},
      {{.role = "any", .dbname = "a/b?c"},
       "postgresql://10.0.0.1:5432,[fe80::2]:5433/a%2Fb%3Fc?target_session_attrs=any"},
  };
  for (const Case& each : cases) {
    auto uri = client_uri(two_nodes(), each.options);
    ASSERT_TRUE(uri) << uri.error().message;
    EXPECT_EQ(*uri, each.uri);
  }
}

// With postgresql.tls the servers take TCP connections over TLS only: the clients' URI checks
// their certificates against the cluster's CA.
TEST(ClientUri, WithTlsTheCertificatesAreChecked) {
  ClusterConfig config = two_nodes();
  config.tls = {
      .cert_file = "/etc/t/s.crt", .key_file = "/etc/t/s.key", .ca_file = "/etc/t/ca.crt"};
  auto uri = client_uri(config, {});
  ASSERT_TRUE(uri) << uri.error().message;
  EXPECT_EQ(*uri,
            "postgresql://10.0.0.1:5432,[fe80::2]:5433/postgres?target_session_attrs=read-write"
            "&sslmode=verify-full&sslrootcert=%2Fetc%2Ft%2Fca.crt");
}

TEST(ClientUri, AnUnknownRoleOrAnEmptyDatabaseIsAClearError) {
  auto role = client_uri(two_nodes(), {.role = "writer"});
  ASSERT_FALSE(role);
  EXPECT_EQ(role.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(role.error().message,
            "unknown role 'writer' (roles: primary, standby, prefer-standby, any)");
  auto dbname = client_uri(two_nodes(), {.dbname = ""});
  ASSERT_FALSE(dbname);
  EXPECT_EQ(dbname.error().message, "the database name is empty");
}

}  // namespace
}  // namespace tandem
