#include "pg/roles.h"

#include <fmt/format.h>

namespace tandem {

Status set_role_password(Connection& connection, const std::string& role,
                         const std::string& verifier) {
  return connection.execute(fmt::format("ALTER ROLE {} PASSWORD '{}'", role, verifier));
}

Status create_login_role(Connection& connection, const std::string& role, bool replication,
                         const std::string& verifier) {
  return connection.execute(fmt::format("CREATE ROLE {} LOGIN {} PASSWORD '{}'", role,
                                        replication ? "REPLICATION" : "", verifier));
}

Status create_database(Connection& connection, const std::string& database,
                       const std::string& owner) {
  return connection.execute(fmt::format("CREATE DATABASE {} OWNER {}", database, owner));
}

}  // namespace tandem
