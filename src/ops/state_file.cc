#include "ops/state_file.h"

#include <nlohmann/json.hpp>

namespace tandem {

std::map<std::string, WallTime> load_inactive_slots(const std::string& path) {
  std::map<std::string, WallTime> slots;
  auto text = read_file(path);
  if (!text) return slots;
  auto json = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json["slot_inactive_since_ms"].is_object()) return slots;
  for (const auto& [name, millis] : json["slot_inactive_since_ms"].items()) {
    if (millis.is_number_integer()) {
      slots[name] = WallTime(std::chrono::milliseconds(millis.get<std::int64_t>()));
    }
  }
  return slots;
}

Status save_inactive_slots(const std::string& path, const std::map<std::string, WallTime>& slots,
                           const OsUser& owner) {
  nlohmann::json json;
  json["slot_inactive_since_ms"] = nlohmann::json::object();
  for (const auto& [name, since] : slots) {
    json["slot_inactive_since_ms"][name] =
        std::chrono::duration_cast<std::chrono::milliseconds>(since.time_since_epoch()).count();
  }
  return write_owned_file(path, json.dump(2) + "\n", owner, 0644);
}

}  // namespace tandem
