// Secrets kept in files only their owner can read (the API's bearer token).
#pragma once

#include <string>

#include "common/result.h"

namespace tandem {

// Creates `path` with a fresh random token (32 hex digits), mode 0600, owned by the caller,
// unless it exists. Returns the token in the file either way.
Result<std::string> ensure_secret_file(const std::string& path);

// A new password: 32 characters from [A-Za-z0-9] (about 190 bits, nothing to escape anywhere).
Result<std::string> random_password();

// The secret in `path`, without surrounding whitespace. Refuses (kPermissionDenied) a file that
// its group or others may read or write, and an empty one.
Result<std::string> read_secret_file(const std::string& path);

}  // namespace tandem
