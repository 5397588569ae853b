#include "common/units.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

namespace tandem {

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

namespace {

struct Unit {
  std::string_view suffix;
  std::int64_t factor;
};

// Longest suffixes first so that "ms" is not read as "s".
constexpr std::array kSizeUnits = {Unit{"TB", 1LL << 40}, Unit{"GB", 1LL << 30},
                                   Unit{"MB", 1LL << 20}, Unit{"kB", 1LL << 10}, Unit{"B", 1}};
constexpr std::array kDurationUnits = {Unit{"min", 60'000}, Unit{"ms", 1}, Unit{"d", 86'400'000},
                                       Unit{"h", 3'600'000}, Unit{"s", 1'000}};

// Splits "16MB" into 16 and "MB"; fails unless the number is a non-negative integer.
Result<std::pair<std::int64_t, std::string_view>> split_number(std::string_view text,
                                                               std::string_view what) {
  text = trim(text);
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data() || value < 0) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("'{}' is not a {} (expected a number and a unit)", text, what));
  }
  return std::pair{value, trim(std::string_view(end, text.data() + text.size() - end))};
}

template <std::size_t N>
Result<std::int64_t> scale(std::string_view text, std::string_view what,
                           const std::array<Unit, N>& units, bool unit_required) {
  auto split = split_number(text, what);
  if (!split) return std::unexpected(split.error());
  auto [value, suffix] = *split;
  if (suffix.empty() && !unit_required) return value;
  for (const Unit& unit : units) {
    if (suffix == unit.suffix) {
      if (value > INT64_MAX / unit.factor) {
        return fail(ErrorCode::kInvalidArgument, fmt::format("'{}' is too large", text));
      }
      return value * unit.factor;
    }
  }
  std::string known;
  for (const Unit& unit : units) {
    known += known.empty() ? "" : ", ";
    known += std::string(unit.suffix);
  }
  return fail(ErrorCode::kInvalidArgument,
              fmt::format("'{}' is not a {}: use one of the units {}", trim(text), what, known));
}

template <std::size_t N>
std::string format_exact(std::int64_t value, const std::array<Unit, N>& units) {
  const Unit* best = nullptr;
  for (const Unit& unit : units) {
    bool divides = value == 0 ? unit.factor == 1 : value % unit.factor == 0;
    if (divides && (best == nullptr || unit.factor > best->factor)) best = &unit;
  }
  return fmt::format("{}{}", value / best->factor, best->suffix);
}

}  // namespace

Result<std::int64_t> parse_size(std::string_view text) {
  return scale(text, "size", kSizeUnits, /*unit_required=*/false);
}

std::string format_size_exact(std::int64_t bytes) { return format_exact(bytes, kSizeUnits); }

std::string format_size_human(std::int64_t bytes) {
  constexpr std::array<std::string_view, 5> kNames = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  std::size_t index = 0;
  while (std::fabs(value) >= 1024.0 && index + 1 < kNames.size()) {
    value /= 1024.0;
    ++index;
  }
  if (index == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.1f} {}", value, kNames[index]);
}

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto millis = scale(text, "duration", kDurationUnits, /*unit_required=*/true);
  if (!millis) return std::unexpected(millis.error());
  return std::chrono::milliseconds(*millis);
}

std::string format_duration(std::chrono::milliseconds duration) {
  return format_exact(duration.count(), kDurationUnits);
}

}  // namespace tandem
