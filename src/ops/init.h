// Making a new primary: initdb, tandem's settings, the roles, started (tandem init).
#pragma once

#include "ops/context.h"

namespace tandem {

// initdb (checksums, UTF-8, no locale), tandem's settings and pg_hba, the replication role
// (and the app role and database if configured) with passwords kept in the password file,
// then start. Refuses, changing nothing, when the data directory is in use or the port taken.
Status init_primary(Context& context, const NodeConfig& node);

}  // namespace tandem
