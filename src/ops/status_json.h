// The --json form of `tandem status`: every field of the report, nulls where unknown.
#pragma once

#include <nlohmann/json.hpp>

#include "core/status_report.h"

namespace tandem {

nlohmann::json report_to_json(const ClusterReport& report);

// The primary's WAL archiver as status --json and /cluster say it (times in Unix seconds).
nlohmann::json archiver_to_json(const ArchiverRow& row);

}  // namespace tandem
