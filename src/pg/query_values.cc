#include "pg/query_values.h"

#include <string>

namespace tandem {

std::optional<Lsn> lsn_of(const QueryResult& rows, std::size_t row, std::string_view column) {
  const auto& value = rows.get(row, column);
  if (!value) return std::nullopt;
  auto lsn = Lsn::parse(*value);
  return lsn ? std::optional(*lsn) : std::nullopt;
}

std::optional<double> number_of(const QueryResult& rows, std::size_t row, std::string_view column) {
  const auto& value = rows.get(row, column);
  if (!value) return std::nullopt;
  return std::stod(*value);
}

std::optional<WallTime> time_of(const QueryResult& rows, std::size_t row, std::string_view column) {
  auto seconds = number_of(rows, row, column);
  if (!seconds) return std::nullopt;
  return WallTime(std::chrono::microseconds(static_cast<std::int64_t>(*seconds * 1e6)));
}

}  // namespace tandem
