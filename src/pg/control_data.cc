#include "pg/control_data.h"

#include <fmt/format.h>

#include <charconv>

namespace tandem {
namespace {

std::map<std::string, std::string, std::less<>> fields_of(std::string_view output) {
  std::map<std::string, std::string, std::less<>> fields;
  while (!output.empty()) {
    std::size_t newline = output.find('\n');
    std::string_view line = output.substr(0, newline);
    output.remove_prefix(newline == std::string_view::npos ? output.size() : newline + 1);
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    std::size_t start = value.find_first_not_of(' ');
    value = start == std::string_view::npos ? std::string_view() : value.substr(start);
    fields.emplace(std::string(line.substr(0, colon)), std::string(value));
  }
  return fields;
}

}  // namespace

Result<ControlData> parse_control_data(std::string_view output) {
  auto fields = fields_of(output);
  auto field = [&](std::string_view name) -> Result<std::string> {
    auto it = fields.find(name);
    if (it == fields.end()) {
      return fail(ErrorCode::kFailed, fmt::format("pg_controldata printed no '{}'", name));
    }
    return it->second;
  };
  auto number = [&](std::string_view name) -> Result<std::uint32_t> {
    auto text = field(name);
    if (!text) return std::unexpected(text.error());
    std::uint32_t value = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc()) {
      return fail(ErrorCode::kFailed, fmt::format("pg_controldata: '{}' is not a number", name));
    }
    return value;
  };
  auto lsn = [&](std::string_view name) -> Result<Lsn> {
    auto text = field(name);
    if (!text) return std::unexpected(text.error());
    return Lsn::parse(*text);
  };

  ControlData data;
  auto state = field("Database cluster state");
  auto identifier = field("Database system identifier");
  auto checkpoint = lsn("Latest checkpoint location");
  auto timeline = number("Latest checkpoint's TimeLineID");
  auto min_recovery = lsn("Minimum recovery ending location");
  auto min_timeline = number("Min recovery ending loc's timeline");
  auto checksums = number("Data page checksum version");
  for (const Error* error :
       {state ? nullptr : &state.error(), identifier ? nullptr : &identifier.error(),
        checkpoint ? nullptr : &checkpoint.error(), timeline ? nullptr : &timeline.error(),
        min_recovery ? nullptr : &min_recovery.error(),
        min_timeline ? nullptr : &min_timeline.error(), checksums ? nullptr : &checksums.error()}) {
    if (error != nullptr) return std::unexpected(*error);
  }
  data.cluster_state = *state;
  data.system_identifier = *identifier;
  data.checkpoint = *checkpoint;
  data.checkpoint_timeline = *timeline;
  data.min_recovery_end = *min_recovery;
  data.min_recovery_timeline = *min_timeline;
  data.data_checksums = *checksums != 0;
  // The settings the server last ran with (a standby must have at least its primary's).
  if (auto level = field("wal_level setting")) data.wal_level = *level;
  if (auto senders = number("max_wal_senders setting")) {
    data.max_wal_senders = static_cast<int>(*senders);
  }
  if (auto bytes = number("Bytes per WAL segment")) data.wal_segment_bytes = *bytes;
  return data;
}

}  // namespace tandem
