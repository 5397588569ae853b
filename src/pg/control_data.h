// pg_controldata's report of a stopped (or running) data directory, read into typed fields.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/result.h"
#include "core/lsn.h"
#include "core/timeline.h"

namespace tandem {

struct ControlData {
  std::string cluster_state;  // "shut down", "shut down in recovery", "in production", ...
  std::string system_identifier;
  Lsn checkpoint;  // "Latest checkpoint location"
  TimelineId checkpoint_timeline = 0;
  Lsn min_recovery_end;  // "Minimum recovery ending location" (0/0 on a primary)
  TimelineId min_recovery_timeline = 0;
  bool data_checksums = false;
  std::string wal_level;    // "wal_level setting" ("replica", "logical"); "" if not printed
  int max_wal_senders = 0;  // "max_wal_senders setting"; 0 if not printed
  std::uint64_t wal_segment_bytes = 0;  // "Bytes per WAL segment" (initdb --wal-segsize); 0 if not

  // True when the server stopped cleanly; pg_rewind needs that of its target.
  bool cleanly_shut_down() const {
    return cluster_state == "shut down" || cluster_state == "shut down in recovery";
  }
};

// Parses the "Name:   value" lines pg_controldata prints with LANG=C.
Result<ControlData> parse_control_data(std::string_view output);

}  // namespace tandem
