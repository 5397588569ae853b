// Where a cluster lives in the coordination store, and how its records are written there:
// /tandem/<cluster>/{initialize, leader, optime, config, settings, members/<name>,
// history/<revision>, ...}.
// Values are JSON.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/cluster_view.h"
#include "dcs/store.h"

namespace tandem {

struct HistoryEntry {
  std::int64_t time_ms = 0;  // wall clock, milliseconds since the epoch
  std::string from;          // the former leader, if known
  std::string to;            // the new leader
  TimelineId timeline = 0;   // the timeline the new leader writes
  std::optional<Lsn> switch_lsn;
  // WAL the former leader had written (by its last renewal) that the new one never received.
  std::optional<std::int64_t> lost_bytes;
  std::string reason;
};

class ClusterLayout {
 public:
  explicit ClusterLayout(std::string cluster)
      : prefix_("/tandem/" + cluster + "/"), members_(std::make_shared<MemberCache>()) {}

  const std::string& prefix() const { return prefix_; }
  std::string initialize() const { return prefix_ + "initialize"; }
  std::string leader() const { return prefix_ + "leader"; }
  std::string optime() const { return prefix_ + "optime"; }
  std::string config() const { return prefix_ + "config"; }
  std::string switchover() const { return prefix_ + "switchover"; }
  std::string sync() const { return prefix_ + "sync"; }
  std::string timeline() const { return prefix_ + "timeline"; }
  std::string member(std::string_view name) const {
    return prefix_ + "members/" + std::string(name);
  }
  // Several machines: the member list (once changed at run time), and what each agent
  // reported running (no TTL: a stopped agent's word stays).
  std::string member_list() const { return prefix_ + "member_list"; }
  // `tandem adopt --node` on several machines: the node whose agent restarts its server now
  // (with a TTL), so that two hosts' adoptions never have two nodes down at once.
  std::string adopt_turn() const { return prefix_ + "adopt_turn"; }
  // The primary adopt took over, until its agent runs it (ClusterView::adopting).
  std::string adopting() const { return prefix_ + "adopting"; }
  // Scheduled backups: the last slot's record (BackupRecord).
  std::string backup() const { return prefix_ + "backup"; }
  // The newest backup the repository holds (LastBackup).
  std::string last_backup() const { return prefix_ + "last_backup"; }
  // The cluster's PostgreSQL settings (`tandem config set`): ClusterSettings.
  std::string settings() const { return prefix_ + "settings"; }
  std::string list_ack(std::string_view name) const {
    return prefix_ + "list_acks/" + std::string(name);
  }
  std::string history(Revision revision) const;
  // Where the history's records are: left out of the cycle's read (Store::read's `except`), as
  // nothing in a view comes from them and they only grow.
  std::string history_prefix() const { return prefix_ + "history/"; }
  // Every key of the cluster but its history, at one revision: all that view() reads.
  Result<StoreSnapshot> read_state(Store& store) const {
    return store.read(prefix(), history_prefix());
  }

  // Reads the view out of a snapshot of prefix(). Records that do not parse are skipped.
  // Thread-safe; member records read before and unchanged since are not parsed again (an
  // agent reads every member every cycle).
  ClusterView view(const StoreSnapshot& snapshot) const;
  // Every agent's last report of the member list it runs, by node.
  std::map<std::string, MemberListAck> list_acks(const StoreSnapshot& snapshot) const;
  // The history, oldest first.
  std::vector<HistoryEntry> history(const StoreSnapshot& snapshot) const;

 private:
  struct MemberCache {
    std::mutex mutex;
    std::map<std::string, std::pair<std::string, std::optional<MemberRecord>>> decoded;
    std::pair<std::string, std::optional<MemberList>> list;  // the member list, decoded
  };
  std::optional<MemberList> list(const std::string& value) const;
  std::optional<MemberRecord> member(const std::string& key, const std::string& value) const;

  std::string prefix_;
  std::shared_ptr<MemberCache> members_;  // shared by copies
};

std::string encode_member(const MemberRecord& member);
std::optional<MemberRecord> decode_member(std::string_view json);
std::string encode_member_list(const MemberList& list);
std::optional<MemberList> decode_member_list(std::string_view json);
std::string encode_list_ack(const MemberListAck& ack);
std::string encode_backup_record(const BackupRecord& record);
std::optional<BackupRecord> decode_backup_record(std::string_view json);
std::string encode_last_backup(const LastBackup& last);
std::optional<LastBackup> decode_last_backup(std::string_view json);
std::optional<MemberListAck> decode_list_ack(std::string_view json);
std::string encode_history(const HistoryEntry& entry);
std::optional<HistoryEntry> decode_history(std::string_view json);
// settings: {"settings": {name: value}}; the revision is the key's.
std::string encode_settings(const std::map<std::string, std::string>& settings);
std::optional<ClusterSettings> decode_settings(std::string_view json);
// The cluster-wide settings people change at run time: {"paused": bool}.
std::string encode_cluster_config(bool paused);
// sync: {"leader": name, "standby": the first name or "", "standbys": [names] when more than
// one}, written by the leader in synchronous mode. Quorum commit, when `quorum` is below the
// number of names (every acknowledged commit on `quorum` of them): {"leader", "standby": "",
// "quorum": k, "quorum_standbys": [names]}.
std::string encode_sync(const std::string& leader, const std::vector<std::string>& standbys,
                        int quorum = 0);
// A leader's update of `sync`, only if nobody wrote it since `expected` (0: only if absent):
// a leader that decided on an old view — a slow store, a stall — must not overwrite the record
// a node taking over wrote meanwhile (found by the simulation: nobody could lead any more).
// Returns the new revision; kConflict if someone else wrote it.
Result<Revision> write_sync_if_unchanged(Store& store, const ClusterLayout& layout,
                                         Revision expected, const std::string& leader,
                                         const std::vector<std::string>& standbys, int quorum = 0);
// timeline: {"timeline": number, "by": name, "promoted": true once the claimant ran on it}.
std::string encode_timeline_claim(TimelineId timeline, const std::string& by,
                                  bool promoted = false);
std::string encode_switchover(const SwitchoverRequest& request);
std::optional<SwitchoverRequest> decode_switchover(std::string_view json);

}  // namespace tandem
