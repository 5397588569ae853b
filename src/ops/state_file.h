// The little tandem remembers between commands, in a JSON file: since when each slot has been
// without its standby (PostgreSQL 15 does not record it).
#pragma once

#include <map>
#include <string>

#include "core/status_report.h"
#include "proc/os_user.h"

namespace tandem {

std::map<std::string, WallTime> load_inactive_slots(const std::string& path);
Status save_inactive_slots(const std::string& path, const std::map<std::string, WallTime>& slots,
                           const OsUser& owner);

}  // namespace tandem
