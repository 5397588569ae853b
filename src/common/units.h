// Parsing and printing of the sizes and durations people write in config files and flags.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tandem {

// "16MB", "1GB", "512kB", "1024" (bytes). Units are powers of 1024, as PostgreSQL uses them.
// `text` without the white space around it.
std::string_view trim(std::string_view text);

Result<std::int64_t> parse_size(std::string_view text);
// The largest unit that divides the size exactly, in PostgreSQL's spelling ("1GB", "640kB").
std::string format_size_exact(std::int64_t bytes);
// Rounded for people: "1.5 GiB", "312 B".
std::string format_size_human(std::int64_t bytes);

// "200ms", "5s", "10min", "2h", "1d". A bare number is refused: the unit is never a guess.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);
// Exact, in the largest unit that divides it: "200ms", "5s", "10min".
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace tandem
