// The old primary's own WAL, held through its pg_rewind. PostgreSQL 15's pg_rewind keeps the
// target's WAL segments from the last common checkpoint's record to the divergence and removes
// every other one the source lacks; but the rewound node's recovery begins at that checkpoint's
// redo point, which lies in an earlier segment when the checkpoint was spread over a segment
// switch (pg_basebackup's checkpoint while another clone's ended, say). Once the new primary has
// recycled that segment, nobody has it: the node waits for it and never opens (bench: host crash,
// 1 trial in 6 on 79f9472). So the target's segments are linked aside before pg_rewind runs, and
// those from the redo point's segment to the checkpoint record's that it removed are put back.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "proc/safe_file.h"

namespace tandem {

// Of `held` (the target's segment file names before pg_rewind), those to put back into pg_wal:
// missing from `present` (its names after), on the redo point's timeline, from the redo point's
// segment to the checkpoint record's — both read from the backup_label pg_rewind wrote
// ("START WAL LOCATION: 0/3000028 (file 000000010000000000000003)", "CHECKPOINT LOCATION:
// 0/4000060") — with segments of `segment_bytes` (pg_controldata's). Never a segment after the
// common checkpoint: the target's own WAL past the divergence stays removed. An error for a label
// it cannot read, or a segment size PostgreSQL would not have (a power of two from 1 MB to 1 GB)
// or that does not put the start location in the label's start file.
Result<std::vector<std::string>> segments_to_restore(std::string_view backup_label,
                                                     const std::vector<std::string>& held,
                                                     const std::set<std::string>& present,
                                                     std::uint64_t segment_bytes);

// Hard links to every WAL segment file of a data directory's pg_wal, in a directory of its own
// beside the data directory (<data_dir>.rewind-wal, mode 0700), made and read through
// descriptors without following a link. Removed, links and directory, when it goes.
class HeldWal {
 public:
  // kFailed, with the reason, when nothing can be held: pg_wal is a link (initdb --waldir) or on
  // another filesystem than the data directory's parent; the rewind then goes without. A holding
  // directory left by a tandem that died between pg_rewind and its restore is used first: while
  // backup_label still names pg_rewind (the node has not started since), what the restore would
  // have put back is put back, then the old links go.
  static Result<HeldWal> hold(const std::string& data_dir, std::uint64_t segment_bytes);

  HeldWal(HeldWal&& other) noexcept = default;
  HeldWal& operator=(HeldWal&&) = delete;
  HeldWal(const HeldWal&) = delete;
  HeldWal& operator=(const HeldWal&) = delete;
  ~HeldWal();

  // After pg_rewind: links back into pg_wal what segments_to_restore says; their names.
  Result<std::vector<std::string>> restore();
  // After a pg_rewind that failed (it may have removed WAL before it stopped): every held segment
  // missing from pg_wal goes back, so the directory a reclone then moves aside lacks no WAL it
  // had. Their names.
  Result<std::vector<std::string>> put_back_all();

 private:
  HeldWal(std::string data_dir, std::string name, Fd parent, Fd held, std::uint64_t segment_bytes)
      : data_dir_(std::move(data_dir)),
        name_(std::move(name)),
        parent_(std::move(parent)),
        held_(std::move(held)),
        segment_bytes_(segment_bytes) {}

  // Links `names` back from the holding directory into pg_wal, those it lacks only; what went
  // back. `choose` picks among the held names given pg_wal's.
  Result<std::vector<std::string>> link_back(
      const std::vector<std::string>& held,
      const std::function<Result<std::vector<std::string>>(const std::set<std::string>&)>& choose);

  std::string data_dir_;
  std::string name_;  // the holding directory's name in the data directory's parent
  Fd parent_;
  Fd held_;
  std::vector<std::string> segments_;
  std::uint64_t segment_bytes_ = 0;
};

}  // namespace tandem
