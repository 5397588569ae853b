// Roles and databases that `tandem init` creates on the first primary. Each takes the SCRAM
// verifier of a password (Connection::encrypt_password), never the password itself.
#pragma once

#include <string>

#include "pg/connection.h"

namespace tandem {

// Sets the password of an existing role (the superuser's, for nodes on several machines).
Status set_role_password(Connection& connection, const std::string& role,
                         const std::string& verifier);

// Creates a role that may log in, and with `replication` stream WAL.
Status create_login_role(Connection& connection, const std::string& role, bool replication,
                         const std::string& verifier);

// How a role's password is stored (pg_authid.rolpassword): what pg_hba.conf's method must
// accept for it. kNone also when the role does not exist.
enum class PasswordKind { kNone, kMd5, kScram };
Result<PasswordKind> password_kind(Connection& connection, const std::string& role);

Status create_database(Connection& connection, const std::string& database,
                       const std::string& owner);

}  // namespace tandem
