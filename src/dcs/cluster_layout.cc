#include "dcs/cluster_layout.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace tandem {
namespace {

using nlohmann::json;

std::optional<Lsn> lsn_field(const json& object, const char* key) {
  if (!object.contains(key) || !object[key].is_string()) return std::nullopt;
  auto lsn = Lsn::parse(object[key].get<std::string>());
  return lsn ? std::optional(*lsn) : std::nullopt;
}

json lsn_json(const std::optional<Lsn>& lsn) { return lsn ? json(lsn->str()) : json(nullptr); }

std::vector<std::string> decode_sync_standbys(const json& record) {
  std::vector<std::string> standbys;
  // A quorum record keeps its members under a key of its own: an agent that knows no quorum
  // reads "standby" (empty) and names nobody, never all of them.
  auto list = record.find("quorum_standbys");
  if (list == record.end()) list = record.find("standbys");
  if (list != record.end() && list->is_array()) {
    for (const json& name : *list) {
      if (name.is_string()) standbys.push_back(name.get<std::string>());
    }
    return standbys;
  }
  std::string standby = record.value("standby", "");
  if (!standby.empty()) standbys.push_back(standby);
  return standbys;
}

std::optional<json> parse_object(std::string_view text) {
  json object = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!object.is_object()) return std::nullopt;
  return object;
}

}  // namespace

std::string ClusterLayout::history(Revision revision) const {
  // Zero-padded so that keys sort in the order they were written.
  return fmt::format("{}{:020}", history_prefix(), revision);
}

ClusterView ClusterLayout::view(const StoreSnapshot& snapshot) const {
  ClusterView view;
  if (const StoredValue* initialize = snapshot.find(this->initialize())) {
    view.initialized = true;
    view.initialized_by = initialize->value;
  }
  if (const StoredValue* leader = snapshot.find(this->leader())) {
    view.leader = LeaderRecord{leader->value, leader->mod_revision, leader->expires_at};
  }
  if (const StoredValue* optime = snapshot.find(this->optime())) {
    auto lsn = Lsn::parse(optime->value);
    if (lsn) view.last_leader_lsn = *lsn;
  }
  if (const StoredValue* config = snapshot.find(this->config())) {
    auto object = parse_object(config->value);
    view.paused = object && object->value("paused", false);
  }
  if (const StoredValue* sync = snapshot.find(this->sync())) {
    view.sync_revision = sync->mod_revision;
    auto object = parse_object(sync->value);
    if (object) {
      view.sync_standbys = decode_sync_standbys(*object);
      view.sync_leader = object->value("leader", "");
      if (object->contains("quorum_standbys")) {
        // A quorum out of range (or none) names nobody: no standby may count on it (review).
        auto quorum = object->find("quorum");
        int k = quorum != object->end() && quorum->is_number_integer() ? quorum->get<int>() : 0;
        auto named = static_cast<int>(view.sync_standbys->size());
        if (k >= 1 && k < named) {
          view.sync_quorum = k;
        } else if (k != named) {
          view.sync_standbys->clear();
        }
      }
    }
  }
  if (const StoredValue* claim = snapshot.find(this->timeline())) {
    auto object = parse_object(claim->value);
    if (object && (*object)["timeline"].is_number_unsigned()) {
      view.timeline_claim =
          TimelineClaim{(*object)["timeline"].get<TimelineId>(), object->value("by", ""),
                        claim->mod_revision, object->value("promoted", false)};
    }
  }
  if (const StoredValue* switchover = snapshot.find(this->switchover())) {
    view.switchover = decode_switchover(switchover->value);
    if (view.switchover) view.switchover->revision = switchover->mod_revision;
  }
  if (const StoredValue* last = snapshot.find(last_backup())) {
    view.last_backup = decode_last_backup(last->value);
  }
  if (const StoredValue* adopting = snapshot.find(this->adopting())) {
    view.adopting = adopting->value;
    view.adopting_revision = adopting->mod_revision;
  }
  if (const StoredValue* backup = snapshot.find(this->backup())) {
    view.backup = decode_backup_record(backup->value);
  }
  if (const StoredValue* settings = snapshot.find(this->settings())) {
    view.settings = decode_settings(settings->value);
    if (view.settings) view.settings->revision = settings->mod_revision;
  }
  if (const StoredValue* list = snapshot.find(member_list())) {
    view.member_list = this->list(list->value);
    if (view.member_list) view.member_list_revision = list->mod_revision;
  }
  std::string members = prefix_ + "members/";
  for (const auto& [key, stored] : snapshot.entries) {
    if (!key.starts_with(members)) continue;
    if (auto member = this->member(key, stored.value)) view.members[member->name] = *member;
  }
  return view;
}

std::optional<MemberList> ClusterLayout::list(const std::string& value) const {
  std::lock_guard lock(members_->mutex);
  auto& [text, decoded] = members_->list;
  if (text != value || !decoded) {
    text = value;
    decoded = decode_member_list(value);
  }
  return decoded;
}

std::map<std::string, MemberListAck> ClusterLayout::list_acks(const StoreSnapshot& snapshot) const {
  std::map<std::string, MemberListAck> acks;
  std::string prefix = prefix_ + "list_acks/";
  for (const auto& [key, stored] : snapshot.entries) {
    if (!key.starts_with(prefix)) continue;
    if (auto ack = decode_list_ack(stored.value)) acks[key.substr(prefix.size())] = *ack;
  }
  return acks;
}

std::optional<MemberRecord> ClusterLayout::member(const std::string& key,
                                                  const std::string& value) const {
  std::lock_guard lock(members_->mutex);
  auto& [text, record] = members_->decoded[key];
  if (text != value || (text.empty() && !record)) {
    text = value;
    record = decode_member(value);
  }
  return record;
}

std::vector<HistoryEntry> ClusterLayout::history(const StoreSnapshot& snapshot) const {
  std::vector<HistoryEntry> entries;
  std::string history = history_prefix();
  for (const auto& [key, stored] : snapshot.entries) {
    if (!key.starts_with(history)) continue;
    if (auto entry = decode_history(stored.value)) entries.push_back(*entry);
  }
  return entries;
}

namespace {

json archiver_json(const ArchiverRow& row) {
  auto ms = [](const std::optional<WallTime>& at) {
    return at ? json(std::chrono::duration_cast<std::chrono::milliseconds>(at->time_since_epoch())
                         .count())
              : json();
  };
  return {{"archived_count", row.archived_count},
          {"last_archived_wal", row.last_archived_wal},
          {"last_archived_ms", ms(row.last_archived_at)},
          {"failed_count", row.failed_count},
          {"last_failed_wal", row.last_failed_wal},
          {"last_failed_ms", ms(row.last_failed_at)},
          {"failing", row.failing()}};
}

std::optional<ArchiverRow> archiver_field(const json& object) {
  if (!object.is_object()) return std::nullopt;
  auto at = [&](const char* key) -> std::optional<WallTime> {
    auto found = object.find(key);
    if (found == object.end() || !found->is_number_integer()) return std::nullopt;
    return WallTime(std::chrono::milliseconds(found->get<std::int64_t>()));
  };
  return ArchiverRow{.archived_count = object.value("archived_count", std::int64_t{0}),
                     .last_archived_wal = object.value("last_archived_wal", ""),
                     .last_archived_at = at("last_archived_ms"),
                     .failed_count = object.value("failed_count", std::int64_t{0}),
                     .last_failed_wal = object.value("last_failed_wal", ""),
                     .last_failed_at = at("last_failed_ms")};
}

json primary_json(const std::optional<PrimaryDetails>& primary) {
  if (!primary) return nullptr;
  json slots = json::array();
  for (const PublishedSlot& slot : primary->slots) {
    slots.push_back(
        {{"name", slot.name},
         {"active", slot.active},
         {"wal_status", slot.wal_status},
         {"retained_bytes", slot.retained_bytes ? json(*slot.retained_bytes) : json()}});
  }
  json document = {{"slots", slots}, {"replay_lag_s", primary->replay_lag_s}};
  if (primary->archiver) document["archiver"] = archiver_json(*primary->archiver);
  return document;
}

std::optional<PrimaryDetails> primary_field(const json& object) {
  auto found = object.find("primary");
  if (found == object.end() || !found->is_object()) return std::nullopt;
  PrimaryDetails details;
  auto slots = found->find("slots");
  if (slots != found->end() && slots->is_array()) {
    for (const json& slot : *slots) {
      if (!slot.is_object()) continue;
      const json& retained = slot.value("retained_bytes", json());
      details.slots.push_back({.name = slot.value("name", ""),
                               .active = slot.value("active", false),
                               .wal_status = slot.value("wal_status", ""),
                               .retained_bytes = retained.is_number()
                                                     ? std::optional(retained.get<std::int64_t>())
                                                     : std::nullopt});
    }
  }
  if (auto archiver = found->find("archiver"); archiver != found->end()) {
    details.archiver = archiver_field(*archiver);
  }
  auto lags = found->find("replay_lag_s");
  if (lags != found->end() && lags->is_object()) {
    for (const auto& [name, lag] : lags->items()) {
      if (lag.is_number()) details.replay_lag_s[name] = lag.get<double>();
    }
  }
  return details;
}

std::vector<std::string> strings_field(const json& object, const char* key) {
  std::vector<std::string> strings;
  if (auto found = object.find(key); found != object.end() && found->is_array()) {
    for (const json& each : *found) {
      if (each.is_string()) strings.push_back(each.get<std::string>());
    }
  }
  return strings;
}

}  // namespace

std::string encode_member(const MemberRecord& member) {
  json record{{"name", member.name},
              {"state", pg_state_name(member.state)},
              {"timeline", member.timeline},
              {"received_lsn", lsn_json(member.received_lsn)},
              {"replayed_lsn", lsn_json(member.replayed_lsn)},
              {"upstream", member.upstream},
              {"api_address", member.api_address},
              {"nofailover", member.nofailover},
              {"primary", primary_json(member.primary)},
              {"settings_revision", member.settings_revision},
              {"pending_restart", member.pending_restart},
              {"configuration_errors", member.configuration_errors}};
  if (member.unwatched) record["unwatched"] = true;
  if (member.frozen_for && member.frozen_at) {
    record["frozen_for"] = *member.frozen_for;
    record["frozen_at"] = member.frozen_at->str();
  }
  return record.dump();
}

std::optional<MemberRecord> decode_member(std::string_view text) {
  auto object = parse_object(text);
  if (!object || !(*object)["name"].is_string()) return std::nullopt;
  auto state = parse_pg_state(object->value("state", ""));
  if (!state) return std::nullopt;
  std::optional<std::int64_t> frozen_for;
  std::optional<Lsn> frozen_at = lsn_field(*object, "frozen_at");
  if (frozen_at && object->contains("frozen_for") && (*object)["frozen_for"].is_number_integer()) {
    frozen_for = (*object)["frozen_for"].get<std::int64_t>();
  } else {
    frozen_at.reset();
  }
  return MemberRecord{.name = (*object)["name"].get<std::string>(),
                      .state = *state,
                      .timeline = object->value("timeline", TimelineId{0}),
                      .received_lsn = lsn_field(*object, "received_lsn"),
                      .replayed_lsn = lsn_field(*object, "replayed_lsn"),
                      .upstream = object->value("upstream", ""),
                      .api_address = object->value("api_address", ""),
                      .nofailover = object->value("nofailover", false),
                      .unwatched = object->value("unwatched", false),
                      .primary = primary_field(*object),
                      .settings_revision = object->value("settings_revision", std::int64_t{0}),
                      .pending_restart = strings_field(*object, "pending_restart"),
                      .configuration_errors = strings_field(*object, "configuration_errors"),
                      .frozen_for = frozen_for,
                      .frozen_at = frozen_at};
}

std::string encode_history(const HistoryEntry& entry) {
  return json{{"time_ms", entry.time_ms},
              {"from", entry.from},
              {"to", entry.to},
              {"timeline", entry.timeline},
              {"switch_lsn", lsn_json(entry.switch_lsn)},
              {"lost_bytes", entry.lost_bytes ? json(*entry.lost_bytes) : json(nullptr)},
              {"reason", entry.reason}}
      .dump();
}

std::optional<HistoryEntry> decode_history(std::string_view text) {
  auto object = parse_object(text);
  if (!object) return std::nullopt;
  return HistoryEntry{.time_ms = object->value("time_ms", std::int64_t{0}),
                      .from = object->value("from", ""),
                      .to = object->value("to", ""),
                      .timeline = object->value("timeline", TimelineId{0}),
                      .switch_lsn = lsn_field(*object, "switch_lsn"),
                      .lost_bytes = (*object)["lost_bytes"].is_number_integer()
                                        ? std::optional((*object)["lost_bytes"].get<std::int64_t>())
                                        : std::nullopt,
                      .reason = object->value("reason", "")};
}

std::string encode_member_list(const MemberList& list) {
  json nodes = json::array();
  for (const NodeConfig& node : list.nodes) {
    nodes.push_back({{"name", node.name},
                     {"host", node.host},
                     {"listen", node.listen},
                     {"port", node.port},
                     {"data_dir", node.data_dir},
                     {"nofailover", node.nofailover},
                     {"api_port", node.api_port}});
  }
  return json{{"version", list.version}, {"nodes", nodes}, {"previous", list.previous}}.dump();
}

std::optional<MemberList> decode_member_list(std::string_view text) {
  auto object = parse_object(text);
  if (!object || !(*object)["version"].is_number_unsigned() || !(*object)["nodes"].is_array()) {
    return std::nullopt;
  }
  MemberList list{.version = (*object)["version"].get<std::uint64_t>()};
  for (json entry : (*object)["nodes"]) {
    if (!entry.is_object() || !entry["name"].is_string() || !entry["host"].is_string() ||
        !entry["port"].is_number_integer() || !entry["data_dir"].is_string()) {
      return std::nullopt;
    }
    list.nodes.push_back(NodeConfig{.name = entry["name"].get<std::string>(),
                                    .host = entry["host"].get<std::string>(),
                                    .listen = entry.value("listen", ""),
                                    .port = entry["port"].get<int>(),
                                    .data_dir = entry["data_dir"].get<std::string>(),
                                    .nofailover = entry.value("nofailover", false),
                                    .api_port = entry.value("api_port", 0)});
  }
  if (list.nodes.empty()) return std::nullopt;
  for (json name : (*object)["previous"]) {
    if (!name.is_string()) return std::nullopt;
    list.previous.push_back(name.get<std::string>());
  }
  return list;
}

std::string encode_backup_record(const BackupRecord& record) {
  return json{{"slot_ms", record.slot_ms},
              {"state", record.state},
              {"by", record.by},
              {"type", record.type},
              {"at_ms", record.at_ms},
              {"last_full_ms", record.last_full_ms},
              {"busy_since_ms", record.busy_since_ms}}
      .dump();
}

std::optional<BackupRecord> decode_backup_record(std::string_view text) {
  auto object = parse_object(text);
  if (!object || !(*object)["slot_ms"].is_number_integer()) return std::nullopt;
  return BackupRecord{.slot_ms = (*object)["slot_ms"].get<std::int64_t>(),
                      .state = object->value("state", ""),
                      .by = object->value("by", ""),
                      .type = object->value("type", ""),
                      .at_ms = object->value("at_ms", std::int64_t{0}),
                      .last_full_ms = object->value("last_full_ms", std::int64_t{0}),
                      .busy_since_ms = object->value("busy_since_ms", std::int64_t{0})};
}

std::string encode_last_backup(const LastBackup& last) {
  return json{{"label", last.label},
              {"type", last.type},
              {"stopped_s", last.stopped_s},
              {"checked_ms", last.checked_ms}}
      .dump();
}

std::optional<LastBackup> decode_last_backup(std::string_view text) {
  auto object = parse_object(text);
  if (!object || !(*object)["checked_ms"].is_number_integer()) return std::nullopt;
  return LastBackup{.label = object->value("label", ""),
                    .type = object->value("type", ""),
                    .stopped_s = object->value("stopped_s", std::int64_t{0}),
                    .checked_ms = (*object)["checked_ms"].get<std::int64_t>()};
}

std::string encode_list_ack(const MemberListAck& ack) {
  return json{{"version", ack.version}, {"names", ack.names}}.dump();
}

std::optional<MemberListAck> decode_list_ack(std::string_view text) {
  auto object = parse_object(text);
  if (!object || !(*object)["version"].is_number_unsigned() || !(*object)["names"].is_array()) {
    return std::nullopt;
  }
  MemberListAck ack{.version = (*object)["version"].get<std::uint64_t>()};
  for (const json& name : (*object)["names"]) {
    if (!name.is_string()) return std::nullopt;
    ack.names.push_back(name.get<std::string>());
  }
  return ack;
}

std::string encode_settings(const std::map<std::string, std::string>& settings) {
  return json{{"settings", settings}}.dump();
}

std::optional<ClusterSettings> decode_settings(std::string_view text) {
  auto object = parse_object(text);
  if (!object || !object->contains("settings") || !(*object)["settings"].is_object()) {
    return std::nullopt;
  }
  ClusterSettings settings;
  for (const auto& [name, value] : (*object)["settings"].items()) {
    if (!value.is_string()) return std::nullopt;
    settings.values[name] = value.get<std::string>();
  }
  return settings;
}

std::string encode_cluster_config(bool paused) { return json{{"paused", paused}}.dump(); }

std::string encode_timeline_claim(TimelineId timeline, const std::string& by, bool promoted) {
  json claim{{"timeline", timeline}, {"by", by}};
  if (promoted) claim["promoted"] = true;
  return claim.dump();
}

Result<Revision> write_sync_if_unchanged(Store& store, const ClusterLayout& layout,
                                         Revision expected, const std::string& leader,
                                         const std::vector<std::string>& standbys, int quorum) {
  std::string value = encode_sync(leader, standbys, quorum);
  return expected == 0 ? store.create(layout.sync(), value, std::nullopt)
                       : store.compare_and_set(layout.sync(), value, expected, std::nullopt);
}

// "standby" alone is what an agent of before ha.synchronous_node_count reads: the first of
// them, a subset of what the record names, which only narrows who may take over.
std::string encode_sync(const std::string& leader, const std::vector<std::string>& standbys,
                        int quorum) {
  if (quorum > 0 && quorum < static_cast<int>(standbys.size())) {
    return json{
        {"leader", leader}, {"standby", ""}, {"quorum", quorum}, {"quorum_standbys", standbys}}
        .dump();
  }
  json record{{"leader", leader}, {"standby", standbys.empty() ? "" : standbys.front()}};
  if (standbys.size() > 1) record["standbys"] = standbys;
  return record.dump();
}

std::string encode_switchover(const SwitchoverRequest& request) {
  return json{{"from", request.from},
              {"to", request.to},
              {"force", request.force},
              {"allow_data_loss", request.allow_data_loss}}
      .dump();
}

std::optional<SwitchoverRequest> decode_switchover(std::string_view text) {
  auto object = parse_object(text);
  if (!object) return std::nullopt;
  return SwitchoverRequest{.from = object->value("from", ""),
                           .to = object->value("to", ""),
                           .force = object->value("force", false),
                           .allow_data_loss = object->value("allow_data_loss", false)};
}

}  // namespace tandem
