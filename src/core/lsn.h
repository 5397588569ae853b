// Lsn: a position in PostgreSQL's write-ahead log, as printed by the server ("16/B374D848").
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tandem {

class Lsn {
 public:
  constexpr Lsn() = default;
  constexpr explicit Lsn(std::uint64_t value) : value_(value) {}

  // Accepts exactly "HI/LO" with one to eight hex digits on each side.
  static Result<Lsn> parse(std::string_view text);

  constexpr std::uint64_t value() const { return value_; }
  // Formats as PostgreSQL does: upper-case hex, the low half without leading zeros.
  std::string str() const;

  // Bytes from `earlier` to this position; negative when this one is before it.
  constexpr std::int64_t bytes_after(Lsn earlier) const {
    return static_cast<std::int64_t>(value_ - earlier.value_);
  }

  constexpr auto operator<=>(const Lsn&) const = default;

 private:
  std::uint64_t value_ = 0;
};

}  // namespace tandem
