// Reading typed values out of a QueryResult: LSNs, numbers and times, NULL as nullopt.
#pragma once

#include <optional>
#include <string_view>

#include "core/lsn.h"
#include "core/status_report.h"
#include "pg/connection.h"

namespace tandem {

// nullopt for NULL and for text that is no LSN.
std::optional<Lsn> lsn_of(const QueryResult& rows, std::size_t row, std::string_view column);

// REQUIRES: the value, unless NULL, is a number.
std::optional<double> number_of(const QueryResult& rows, std::size_t row, std::string_view column);

// A number of seconds since the epoch (extract(epoch FROM ...)) as a time.
std::optional<WallTime> time_of(const QueryResult& rows, std::size_t row, std::string_view column);

}  // namespace tandem
