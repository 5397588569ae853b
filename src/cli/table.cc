#include "cli/table.h"

#include <algorithm>

namespace tandem {

std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths(headers.size());
  for (std::size_t column = 0; column < headers.size(); ++column) {
    widths[column] = headers[column].size();
    for (const auto& row : rows) widths[column] = std::max(widths[column], row.at(column).size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (std::size_t column = 0; column < cells.size(); ++column) {
      text += cells[column];
      if (column + 1 < cells.size())
        text += std::string(widths[column] - cells[column].size() + 2, ' ');
    }
    return text + "\n";
  };
  std::string table = line(headers);
  for (const auto& row : rows) table += line(row);
  return table;
}

}  // namespace tandem
