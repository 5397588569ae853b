#include "core/lsn.h"

#include <fmt/format.h>

#include <charconv>

namespace tandem {
namespace {

Result<std::uint32_t> parse_half(std::string_view half, std::string_view whole) {
  std::uint32_t value = 0;
  auto [end, ec] = std::from_chars(half.data(), half.data() + half.size(), value, 16);
  if (half.empty() || half.size() > 8 || ec != std::errc() || end != half.data() + half.size()) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("'{}' is not a WAL position (expected e.g. 0/3000148)", whole));
  }
  return value;
}

}  // namespace

Result<Lsn> Lsn::parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("'{}' is not a WAL position (expected e.g. 0/3000148)", text));
  }
  auto high = parse_half(text.substr(0, slash), text);
  if (!high) return std::unexpected(high.error());
  auto low = parse_half(text.substr(slash + 1), text);
  if (!low) return std::unexpected(low.error());
  return Lsn((static_cast<std::uint64_t>(*high) << 32) | *low);
}

std::string Lsn::str() const {
  return fmt::format("{:X}/{:X}", value_ >> 32, value_ & 0xFFFFFFFFu);
}

}  // namespace tandem
