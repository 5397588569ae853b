// What `tandem adopt` reads of a server it did not create, from its data directory alone:
// PG_VERSION, its owner, postmaster.pid, standby.signal, pg_controldata and the
// primary_conninfo that pg_basebackup -R wrote to postgresql.auto.conf. No SQL: a server is
// judged before tandem changes anything that would let it connect.
#pragma once

#include <string>

#include "common/result.h"
#include "core/adopt_plan.h"
#include "pg/pg_binaries.h"
#include "proc/process_runner.h"

namespace tandem {

Result<ServerFacts> read_server_facts(const std::string& data_dir, const PgBinaries& binaries,
                                      ProcessRunner& runner);

// The major version of the PostgreSQL programs ("15"), from `postgres --version`.
Result<std::string> pg_major_version(const PgBinaries& binaries, ProcessRunner& runner);

}  // namespace tandem
