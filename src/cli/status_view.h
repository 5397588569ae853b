// The text form of a ClusterReport, shared by `status` and `slot list`.
#pragma once

#include <string>

#include "core/status_report.h"

namespace tandem {

std::string render_slots(const ClusterReport& report);

}  // namespace tandem
