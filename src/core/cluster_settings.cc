#include "core/cluster_settings.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "common/units.h"

namespace tandem {
namespace {

struct Owned {
  std::string_view name;
  std::string_view reason;
};

constexpr std::string_view kNodeFile = "tandem.yaml gives each node its own";
constexpr std::string_view kReplication = "the agents set it as a node's role changes";
constexpr std::string_view kStandbysFirst =
    "a standby needs at least its primary's value or it cannot take over: set it in each "
    "node's postgresql.conf, the standbys first when it grows";

// Every setting tandem.conf writes, and the few it relies on without writing.
constexpr std::array kOwned{
    Owned{"cluster_name", "tandem names each server after its node"},
    Owned{"listen_addresses", kNodeFile},
    Owned{"port", kNodeFile},
    Owned{"unix_socket_directories", "tandem.yaml's socket_dir sets it"},
    Owned{"password_encryption", "tandem's roles log in with SCRAM"},
    Owned{"wal_level", "replication needs it at replica"},
    Owned{"max_wal_senders", "tandem.yaml's replication.max_wal_senders sets it"},
    Owned{"max_replication_slots", "tandem.yaml's replication.max_replication_slots sets it"},
    Owned{"hot_standby", "tandem's standbys answer queries"},
    Owned{"wal_log_hints", "pg_rewind needs it on"},
    Owned{"recovery_init_sync_method", "tandem's failover times rest on syncfs"},
    Owned{"wal_receiver_status_interval",
          "synchronous mode needs a standby to confirm each second"},
    Owned{"hba_file", "tandem writes each node's pg_hba.conf"},
    Owned{"ssl", "tandem.yaml's postgresql.tls sets it"},
    Owned{"ssl_cert_file", "tandem.yaml's postgresql.tls sets it"},
    Owned{"ssl_key_file", "tandem.yaml's postgresql.tls sets it"},
    Owned{"ident_file", "tandem writes each node's pg_ident.conf"},
    Owned{"config_file", "it is where the server starts from"},
    Owned{"data_directory", kNodeFile},
    Owned{"wal_retrieve_retry_interval",
          "tandem.yaml's replication.wal_retrieve_retry_interval sets it"},
    Owned{"max_slot_wal_keep_size", "tandem.yaml's replication.max_slot_wal_keep_size sets it"},
    Owned{"recovery_target_timeline", "standbys follow the newest timeline"},
    Owned{"log_line_prefix", "tandem reads the server's log"},
    Owned{"archive_mode", "tandem.yaml's backup: section sets it"},
    Owned{"archive_command", "tandem.yaml's backup: section sets it"},
    Owned{"archive_library", "tandem.yaml's backup: section sets it"},
    Owned{"restore_command", "tandem.yaml's backup: section sets it"},
    Owned{"synchronous_standby_names", "synchronous mode (ha.synchronous_mode) names the standby"},
    Owned{"synchronous_commit",
          "synchronous mode's guarantee rests on it (a session may still set its own)"},
    Owned{"primary_conninfo", kReplication},
    Owned{"primary_slot_name", kReplication},
    Owned{"promote_trigger_file", "the agents promote"},
    Owned{"recovery_target", "restores take a target (tandem restore --to)"},
    Owned{"recovery_target_lsn", "restores take a target (tandem restore --to)"},
    Owned{"recovery_target_name", "restores take a target (tandem restore --to)"},
    Owned{"recovery_target_time", "restores take a target (tandem restore --to)"},
    Owned{"recovery_target_xid", "restores take a target (tandem restore --to)"},
    Owned{"recovery_target_action", "restores take a target (tandem restore --to)"},
    Owned{"recovery_target_inclusive", "restores take a target (tandem restore --to)"},
    Owned{"recovery_end_command", "it would run inside a promotion and could hold a failover"},
    Owned{"full_page_writes", "pg_rewind needs it on"},
    Owned{"update_process_title", "the agents read a starting server's recovery in its title"},
    Owned{"lc_messages", "the agents read the server's messages in English"},
    // A standby needs at least its primary's value of these, or its replay pauses and it cannot
    // be promoted (or it does not start): changed node by node, standbys first when raised.
    Owned{"max_connections", kStandbysFirst},
    Owned{"max_worker_processes", kStandbysFirst},
    Owned{"max_prepared_transactions", kStandbysFirst},
    Owned{"max_locks_per_transaction", kStandbysFirst},
};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct Unit {
  std::string_view name;
  double factor;  // bytes, or milliseconds
};
constexpr std::array kMemoryUnits{Unit{"B", 1}, Unit{"kB", 1024}, Unit{"MB", 1024.0 * 1024},
                                  Unit{"GB", 1024.0 * 1024 * 1024},
                                  Unit{"TB", 1024.0 * 1024 * 1024 * 1024}};
constexpr std::array kTimeUnits{Unit{"us", 0.001},  Unit{"ms", 1},      Unit{"s", 1000},
                                Unit{"min", 60000}, Unit{"h", 3600000}, Unit{"d", 86400000}};

template <std::size_t N>
std::optional<double> factor_in(const std::array<Unit, N>& units, std::string_view name) {
  for (const Unit& unit : units) {
    if (unit.name == name) return unit.factor;
  }
  return std::nullopt;
}

template <std::size_t N>
std::string unit_names(const std::array<Unit, N>& units) {
  std::vector<std::string_view> names;
  for (const Unit& unit : units) names.push_back(unit.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

// The setting's base unit ("8kB": 8192 bytes), and whether it is one of memory.
struct BaseUnit {
  double factor = 1;
  bool memory = false;
};
std::optional<BaseUnit> base_unit(std::string_view unit) {
  double multiple = 1;
  std::size_t digits = 0;
  while (digits < unit.size() && std::isdigit(static_cast<unsigned char>(unit[digits]))) ++digits;
  if (digits > 0) multiple = std::strtod(std::string(unit.substr(0, digits)).c_str(), nullptr);
  std::string_view name = unit.substr(digits);
  if (auto bytes = factor_in(kMemoryUnits, name)) return BaseUnit{multiple * *bytes, true};
  if (auto ms = factor_in(kTimeUnits, name)) return BaseUnit{multiple * *ms, false};
  return std::nullopt;
}

std::string range_text(const SettingDefinition& definition) {
  return fmt::format("{} .. {}{}", definition.min.value_or(-INFINITY),
                     definition.max.value_or(INFINITY),
                     definition.unit.empty() ? "" : " (in " + definition.unit + ")");
}

// A number as PostgreSQL's parse_int and parse_real read it: strtol with base 0 for an integer
// (hex and octal too), a fraction or exponent read again by strtod; then a unit, converted to
// the setting's base unit (an integer rounded); then its range.
Result<std::string> check_number(const SettingDefinition& definition, std::string_view value) {
  std::string text(value);
  const char* start = text.c_str();
  char* end = nullptr;
  double number = 0;
  bool integer = definition.vartype == "integer";
  errno = 0;
  if (integer) {
    long long whole = std::strtoll(start, &end, 0);
    if (*end == '.' || *end == 'e' || *end == 'E' || errno == ERANGE) {
      errno = 0;
      number = std::strtod(start, &end);
    } else {
      number = static_cast<double>(whole);
    }
  } else {
    number = std::strtod(start, &end);
  }
  // PostgreSQL refuses what strtod cannot represent (1e-400 as much as 1e400).
  if (end == start || errno == ERANGE || !std::isfinite(number)) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("{}: \"{}\" is not a number", definition.name, value));
  }
  std::string_view unit = trim(std::string_view(end));
  if (!unit.empty()) {
    auto base = base_unit(definition.unit);
    if (!base) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("{}: \"{}\": this setting takes no unit", definition.name, value));
    }
    auto factor = base->memory ? factor_in(kMemoryUnits, unit) : factor_in(kTimeUnits, unit);
    if (!factor) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("{}: \"{}\": its units are {}", definition.name, value,
                              base->memory ? unit_names(kMemoryUnits) : unit_names(kTimeUnits)));
    }
    number = number * *factor / base->factor;
  }
  if (integer) number = std::rint(number);
  if ((definition.min && number < *definition.min) ||
      (definition.max && number > *definition.max)) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("{}: \"{}\" is outside its range {}", definition.name, value,
                            range_text(definition)));
  }
  return std::string(value);
}

// PostgreSQL's parse_bool: true, false, yes, no, on, off, 1, 0, or a prefix of one of them
// long enough to tell ("o" is not).
std::optional<bool> parse_bool(std::string_view value) {
  std::string word = lower(value);
  if (word.empty()) return std::nullopt;
  struct Word {
    std::string_view spelling;
    std::size_t shortest;
    bool value;
  };
  constexpr std::array kWords{Word{"true", 1, true}, Word{"false", 1, false}, Word{"yes", 1, true},
                              Word{"no", 1, false},  Word{"on", 2, true},     Word{"off", 2, false},
                              Word{"1", 1, true},    Word{"0", 1, false}};
  for (const Word& known : kWords) {
    if (word.size() >= known.shortest && known.spelling.starts_with(word)) return known.value;
  }
  return std::nullopt;
}

// PostgreSQL's grammar of a setting's name: an identifier, or two joined by a dot (a
// placeholder for an extension's). Anything else breaks the file it is written to.
bool valid_identifier(std::string_view word) {
  if (word.empty() || std::isdigit(static_cast<unsigned char>(word.front()))) return false;
  return std::all_of(word.begin(), word.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

bool valid_name(std::string_view name) {
  auto dot = name.find('.');
  if (dot == std::string_view::npos) return valid_identifier(name);
  return valid_identifier(name.substr(0, dot)) && valid_identifier(name.substr(dot + 1));
}

Status no_control_characters(std::string_view name, std::string_view value) {
  for (char c : value) {
    if (std::iscntrl(static_cast<unsigned char>(c))) {
      return fail(
          ErrorCode::kInvalidArgument,
          fmt::format("{}: a value cannot hold a line break or another control character", name));
    }
  }
  return {};
}

}  // namespace

Status check_stored_settings(const std::map<std::string, std::string>& values) {
  for (const auto& [name, value] : values) {
    if (name != lower(name) || !valid_name(name)) {
      return fail(ErrorCode::kInvalidArgument, fmt::format("\"{}\" is not a setting's name", name));
    }
    if (auto ok = not_owned(name); !ok) return ok;
    if (auto ok = no_control_characters(name, value); !ok) return ok;
  }
  return {};
}

std::optional<std::string> owned_setting(std::string_view name) {
  std::string key = lower(name);
  for (const Owned& owned : kOwned) {
    if (owned.name == key) return std::string(owned.reason);
  }
  return std::nullopt;
}

Status not_owned(std::string_view name) {
  auto reason = owned_setting(name);
  if (!reason) return {};
  return fail(ErrorCode::kInvalidArgument, fmt::format("{} is tandem's to set: {}", name, *reason));
}

Result<std::pair<std::string, std::string>> parse_assignment(std::string_view text) {
  auto equals = text.find('=');
  if (equals == std::string_view::npos) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("\"{}\": expected NAME=VALUE (work_mem=64MB, say)", text));
  }
  std::string name = lower(trim(text.substr(0, equals)));
  std::string value(trim(text.substr(equals + 1)));
  if (name.empty()) {
    return fail(ErrorCode::kInvalidArgument, fmt::format("\"{}\": no setting named", text));
  }
  if (!valid_name(name)) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("\"{}\": not a setting's name (letters, digits and _, not first a "
                            "digit; an extension's: one . between two such)",
                            name));
  }
  if (auto ok = no_control_characters(name, value); !ok) return std::unexpected(ok.error());
  return std::pair{std::move(name), std::move(value)};
}

Result<std::string> check_setting(const SettingDefinition& definition, std::string_view value) {
  if (auto ok = not_owned(definition.name); !ok) return std::unexpected(ok.error());
  if (definition.context == "internal") {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("{} cannot be set: PostgreSQL fixes it when the cluster is made",
                            definition.name));
  }
  if (auto ok = no_control_characters(definition.name, value); !ok) {
    return std::unexpected(ok.error());
  }
  if (definition.vartype == "bool") {
    auto parsed = parse_bool(value);
    if (!parsed) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("{}: \"{}\" is not a boolean (on or off)", definition.name, value));
    }
    return std::string(*parsed ? "on" : "off");
  }
  if (definition.vartype == "enum") {
    std::string wanted = lower(value);
    for (const std::string& choice : definition.enumvals) {
      if (lower(choice) == wanted) return choice;
    }
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("{}: \"{}\" is not one of {}", definition.name, value,
                            fmt::join(definition.enumvals, ", ")));
  }
  if (definition.vartype == "integer" || definition.vartype == "real") {
    return check_number(definition, value);
  }
  return std::string(value);
}

}  // namespace tandem
