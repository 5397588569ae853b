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

Result<PasswordKind> password_kind(Connection& connection, const std::string& role) {
  auto rows = connection.query(
      "SELECT CASE WHEN rolpassword LIKE 'SCRAM-SHA-256$%' THEN 'scram' WHEN rolpassword LIKE "
      "'md5%' THEN 'md5' ELSE 'none' END AS kind FROM pg_authid WHERE rolname = $1",
      {role});
  if (!rows) return std::unexpected(rows.error());
  if (rows->size() == 0) return PasswordKind::kNone;
  std::string kind = rows->text(0, "kind");
  return kind == "scram" ? PasswordKind::kScram
         : kind == "md5" ? PasswordKind::kMd5
                         : PasswordKind::kNone;
}

Status create_database(Connection& connection, const std::string& database,
                       const std::string& owner) {
  return connection.execute(fmt::format("CREATE DATABASE {} OWNER {}", database, owner));
}

}  // namespace tandem
