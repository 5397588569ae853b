// Finding the PostgreSQL server programs tandem drives.
#pragma once

#include <string>

#include "common/result.h"
#include "proc/process_runner.h"

namespace tandem {

struct PgBinaries {
  std::string bin_dir;
  std::string path(std::string_view program) const { return bin_dir + "/" + std::string(program); }
};

// Looks in `configured` when set; else asks pg_config --bindir; else takes the newest
// /usr/lib/postgresql/<version>/bin. The chosen directory must hold every program tandem runs.
Result<PgBinaries> find_pg_binaries(const std::string& configured, ProcessRunner& runner);

}  // namespace tandem
