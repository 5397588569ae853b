// Plain-text tables for terminals: columns padded to their widest cell.
#pragma once

#include <string>
#include <vector>

namespace tandem {

std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows);

}  // namespace tandem
