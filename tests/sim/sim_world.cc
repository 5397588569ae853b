#include "sim_world.h"

#include <fmt/format.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "core/member_change.h"

namespace tandem::sim {
namespace {

using std::chrono::milliseconds;

constexpr SimTime kTick{20};  // replication and client writes

bool is_prefix(const std::vector<Record>& shorter, const std::vector<Record>& longer) {
  if (shorter.size() > longer.size()) return false;
  for (std::size_t i = 0; i < shorter.size(); ++i) {
    if (shorter[i].id != longer[i].id) return false;
  }
  return true;
}

Lsn lsn_of(std::size_t records) { return Lsn(0x1000000 + records * 0x100); }

}  // namespace

TimelineId Pg::timeline() const {
  TimelineId newest = 0;
  for (const Record& record : wal) newest = std::max(newest, record.timeline);
  return newest;
}

// ---------------------------------------------------------------------------------------------
// StoreClock

// The world's time less every moment the store was stopped.
std::chrono::steady_clock::time_point StoreClock::steady_now() const {
  SimTime now = world_.now;
  SimTime stood_still{0};
  SimTime counted{0};  // stops may overlap: each moment is subtracted once
  std::vector<std::pair<SimTime, SimTime>> stops = stops_;
  std::sort(stops.begin(), stops.end());
  for (auto [from, until] : stops) {
    from = std::max(from, counted);
    until = std::min(until, now);
    if (until > from) stood_still += until - from;
    counted = std::max(counted, until);
  }
  return std::chrono::steady_clock::time_point(std::chrono::hours(1) + now - stood_still);
}

std::chrono::steady_clock::time_point HostClock::steady_now() const {
  SimTime stood_still{0};
  if (stops_in_suspend_) {
    for (auto [from, until] : suspends_) {
      until = std::min(until, world_.now);
      if (until > from) stood_still += until - from;
    }
  }
  return world_.steady_now() - stood_still;
}

bool StoreClock::stopped() const {
  return std::any_of(stops_.begin(), stops_.end(), [&](const auto& stop) {
    return stop.first <= world_.now && world_.now < stop.second;
  });
}

// ---------------------------------------------------------------------------------------------
// SimStore

Status SimStore::reachable() const {
  const Slot& slot = world_.slots[index_];
  if (!slot.alive) return fail(ErrorCode::kUnavailable, "the agent is dead");
  if (world_.store_clock.stopped()) {  // every endpoint refuses the connection at once
    return fail(ErrorCode::kUnavailable, "simulated outage: etcd is stopped");
  }
  int store = world_.network.store();
  // Cut one way, from the store: only a connection made before the cut carries a request.
  bool one_way = !world_.network.linked(store, index_) && slot.store_connection_dropped;
  if (!world_.network.linked(index_, store) || one_way) {
    // etcd's client tries each endpoint in turn, each until its request timeout.
    world_.spend(index_, world_.random_ms(SimTime(200), SimTime(1500)));
    if (!slot.alive) return fail(ErrorCode::kUnavailable, "the agent is dead");
    if (!world_.network.connected(index_, store)) {
      return fail(ErrorCode::kUnavailable, "simulated partition: etcd out of reach");
    }
  }
  if (slot.store_slow_until > world_.clock.now) {
    world_.spend(index_, world_.random_ms(SimTime(50), slot.store_slow_max));
    if (!slot.alive) return fail(ErrorCode::kUnavailable, "the agent is dead");
  }
  if (slot.store_down_until > world_.clock.now) {
    return fail(ErrorCode::kUnavailable, "simulated store outage");
  }
  return {};
}

// One machine: another agent frozen inside a store write holds the write lock; a write waits
// for it up to SQLite's busy timeout (400 ms), then fails.
Status SimStore::write_lock() const {
  auto held_by_other = [&] {
    auto holder = world_.store_lock_holder();
    return holder && *holder != index_;
  };
  if (!held_by_other()) return {};
  world_.spend(index_, SimTime(400));
  if (!world_.slots[index_].alive) return fail(ErrorCode::kUnavailable, "the agent is dead");
  if (held_by_other()) return fail(ErrorCode::kUnavailable, "simulated: database is locked");
  return {};
}

// The first round's agent claimed no timeline: its claims are acknowledged and forgotten.
bool SimStore::forgets(const std::string& key) const {
  return world_.settings.round_one && key.ends_with("/timeline");
}

// etcd grants leases in whole seconds, and none shorter than 2 s with its default settings.
Ttl SimStore::ttl_of(Ttl ttl) const {
  if (!ttl || !world_.multi_host()) return ttl;
  return std::max(std::chrono::milliseconds(2000), (*ttl + SimTime(999)) / 1000 * 1000);
}

// While the store answers slowly, a write it applied may still fail for the agent: its answer
// timed out (unavailable), or the client retried it on another member, which found it done
// (a conflict, for a conditional write). What the caller then believes is what etcd did.
// A link cut one way, from the store to this host: the request arrived on a connection made
// before the cut (a write is applied), its answer does not, and the client gives up at its
// timeout and drops the connection; a new one needs the link both ways.
bool SimStore::answer_lost() {
  Slot& slot = world_.slots[index_];
  if (world_.network.linked(world_.network.store(), index_)) {
    slot.store_connection_dropped = false;
    return false;
  }
  slot.store_connection_dropped = true;
  world_.spend(index_, world_.random_ms(SimTime(200), SimTime(1500)));
  return true;
}

template <typename T>
Result<T> SimStore::answer(Result<T> result, bool conditional, const std::string& key) {
  if (answer_lost()) {
    world_.note(fmt::format("{}: the answer to a request on {} was dropped on its way back",
                            world_.config.nodes[index_].name, key));
    return fail(ErrorCode::kUnavailable, "simulated: the answer was dropped");
  }
  if (!result || world_.slots[index_].store_slow_until <= world_.clock.now) return result;
  switch (world_.rng() % 4) {
    case 0:
      world_.note(fmt::format("{}: the answer to a write of {} was lost",
                              world_.config.nodes[index_].name, key));
      return fail(ErrorCode::kUnavailable, "simulated: the answer timed out");
    case 1:
      if (!conditional) return result;
      world_.note(fmt::format("{}: a write of {} was retried and found done",
                              world_.config.nodes[index_].name, key));
      return fail(ErrorCode::kConflict, "simulated: retried on another member, found done");
    default:
      return result;
  }
}

Result<StoreSnapshot> SimStore::read(std::string_view prefix, std::string_view except) {
  if (auto ok = reachable(); !ok) return std::unexpected(ok.error());
  auto snapshot = inner_.read(prefix, except);
  if (answer_lost()) return fail(ErrorCode::kUnavailable, "simulated: the answer was dropped");
  return snapshot;
}

Result<Revision> SimStore::create(const std::string& key, const std::string& value, Ttl ttl) {
  if (auto ok = reachable(); !ok) return std::unexpected(ok.error());
  if (auto ok = write_lock(); !ok) return std::unexpected(ok.error());
  if (forgets(key)) return Revision{1};
  auto result = inner_.create(key, value, ttl_of(ttl));
  if (key.ends_with("/leader") && result) {
    world_.note(
        fmt::format("{} created the lease for {}", world_.config.nodes[index_].name, value));
  }
  return answer(std::move(result), true, key);
}

Result<Revision> SimStore::compare_and_set(const std::string& key, const std::string& value,
                                           Revision expected, Ttl ttl) {
  if (auto ok = reachable(); !ok) return std::unexpected(ok.error());
  if (auto ok = write_lock(); !ok) return std::unexpected(ok.error());
  if (forgets(key)) return Revision{1};
  auto result = inner_.compare_and_set(key, value, expected, ttl_of(ttl));
  if (key.ends_with("/leader") && result && value != world_.config.nodes[index_].name) {
    world_.note(fmt::format("{} handed the lease to {}", world_.config.nodes[index_].name, value));
  }
  return answer(std::move(result), true, key);
}

Result<Revision> SimStore::put(const std::string& key, const std::string& value, Ttl ttl) {
  if (auto ok = reachable(); !ok) return std::unexpected(ok.error());
  if (auto ok = write_lock(); !ok) return std::unexpected(ok.error());
  return answer(inner_.put(key, value, ttl_of(ttl)), false, key);
}

Status SimStore::remove(const std::string& key, std::optional<Revision> expected) {
  if (auto ok = reachable(); !ok) return ok;
  if (auto ok = write_lock(); !ok) return ok;
  return answer(inner_.remove(key, expected), expected.has_value(), key);
}

// ---------------------------------------------------------------------------------------------
// SimNode

Pg& SimNode::pg() { return world_.slots[index_].pg; }

Status SimNode::usable() {
  if (!world_.slots[index_].alive) return fail(ErrorCode::kUnavailable, "the agent is dead");
  return {};
}

// At rest, the answer stands while the same postmaster runs with standby.signal as it said, and
// its WAL file looks untouched. More pessimistic than the real check (a quiet file, nothing in
// flight, its stamp taken after): an answer given at a WAL length that is a multiple of five is
// blind — every later write and timeline switch missed until the next full look, at most a
// second later (no draw: the seeds' schedules stay as they were).
bool SimNode::answer_stands(const Pg& server) const {
  if (!answer_ || answer_->postmaster != world_.slots[index_].postmaster_starts ||
      answer_->standby_signal != server.standby_signal) {
    return false;
  }
  if (answer_->wal % 5 == 0) return true;
  return server.wal.size() == answer_->wal && answer_->timeline == server.timeline();
}

NodeObservation SimNode::observe(bool at_rest) {
  NodeObservation node;
  const Pg& server = pg();
  if (!server.data) {
    answer_.reset();
    return node;
  }
  node.data_was_primary = !server.standby_signal;
  if (!server.running || world_.slots[index_].foreign_postmaster) {
    answer_.reset();
    node.state = PgState::kStopped;
    node.timeline = server.timeline();
    return node;
  }
  node.upstream = server.standby_signal ? server.upstream : "";
  if (world_.clock.now < server.ready_at || (server.wal_gap && server.standby_signal)) {
    answer_.reset();
    node.state = PgState::kStarting;
    SimTime since = std::max(server.ready_at, server.waiting_since);
    if (server.wal_gap && world_.clock.now > since)
      node.recovery_stuck_for = world_.clock.now - since;
    return node;
  }
  ++world_.answers;
  if (at_rest && answer_stands(server)) {
    ++world_.answers_at_rest;
    node = answer_->said;
    node.data_was_primary = !server.standby_signal;
    if (!answer_->streaming && server.not_streaming_since) {
      node.not_streaming_for = world_.clock.now - *server.not_streaming_since;
    }
    return node;
  }
  node.state = server.standby_signal ? PgState::kStandby : PgState::kPrimary;
  node.timeline = server.timeline();
  node.received_lsn = lsn_of(server.wal.size());
  node.replayed_lsn = node.received_lsn;
  bool streaming = !(server.standby_signal && server.not_streaming_since);
  if (!streaming) node.not_streaming_for = world_.clock.now - *server.not_streaming_since;
  if (server.standby_signal && server.upstream.empty() && server.receiver_stopped_since) {
    node.receiver_stopped_for = world_.clock.now - *server.receiver_stopped_since;
  }
  // Replay in the model keeps up with the WAL: pointed at nobody, it has used up all it holds.
  node.receive_position_known = server.receiver_ran || server.upstream.empty();
  if (server.standby_signal && server.pretends_frozen_since) {
    node.upstream = "";
    node.receiver_stopped_for = world_.clock.now - *server.pretends_frozen_since;
  }
  node.answered_at = world_.slots[index_].clock->steady_now();  // its agent's clock
  node.answer_repeated =
      answer_ && answer_->said.state == node.state &&
      answer_->said.received_lsn == node.received_lsn && answer_->said.timeline == node.timeline &&
      answer_->said.upstream == node.upstream && answer_->streaming == streaming &&
      answer_->postmaster == world_.slots[index_].postmaster_starts;
  answer_ = Answer{.said = node,
                   .streaming = streaming,
                   .postmaster = world_.slots[index_].postmaster_starts,
                   .standby_signal = server.standby_signal,
                   .wal = server.wal.size(),
                   .timeline = server.timeline()};
  return node;
}

Status SimNode::initialize() {
  if (auto ok = usable(); !ok) return ok;
  world_.spend(index_, world_.random_ms(SimTime(20), SimTime(300)));
  if (auto ok = usable(); !ok) return ok;
  Pg& server = pg();
  server = Pg{};
  ++world_.slots[index_].postmaster_starts;
  server.data = true;
  server.running = true;
  server.wal = {Record{1'000'000'000ULL + static_cast<std::uint64_t>(index_), 1}};
  server.ready_at = world_.clock.now;
  world_.promoted(index_, 1);
  return {};
}

Status SimNode::clone(const std::string& leader) {
  if (auto ok = usable(); !ok) return ok;
  int source = world_.index_of(leader);
  if (source < 0 || !world_.slots[source].pg.running || !world_.reaches(index_, source)) {
    return fail(ErrorCode::kUnavailable, leader + " does not run: nothing to copy");
  }
  world_.spend(index_, world_.random_ms(SimTime(100), SimTime(800)));
  if (auto ok = usable(); !ok) return ok;
  const Pg& from = world_.slots[source].pg;
  if (!from.running || !world_.reaches(index_, source)) {
    return fail(ErrorCode::kUnavailable, "the copy broke off: " + leader + " went away");
  }
  Pg& server = pg();
  server = Pg{};
  ++world_.slots[index_].postmaster_starts;
  server.data = true;
  server.running = true;
  server.standby_signal = true;
  server.upstream = leader;
  server.wal = from.wal;
  server.ready_at = world_.clock.now + world_.random_ms(SimTime(20), SimTime(300));
  return {};
}

void SimNode::stop_foreign() {
  if (!world_.slots[index_].foreign_postmaster || !pg().running) return;
  world_.spend(index_, world_.random_ms(SimTime(20), SimTime(500)));  // pg_ctl stop -m fast
  if (world_.slots[index_].foreign_postmaster && pg().running) world_.stop_pg(index_, true);
}

Status SimNode::start_primary(const std::function<Status()>& may_spawn,
                              const SyncNames& synchronous_standbys) {
  if (auto ok = usable(); !ok) return ok;
  if (auto ok = may_spawn(); !ok) return ok;
  stop_foreign();
  if (auto ok = usable(); !ok) return ok;
  Pg& server = pg();
  if (server.running) return fail(ErrorCode::kConflict, "already running");
  server.running = true;
  server.standby_signal = false;
  server.upstream.clear();
  server.sync_names = server.sync_file = synchronous_standbys;  // tandem.conf's, in effect
  server.sync_any = server.sync_file_any = 0;  // every one of them (restart_in_place)
  server.ready_at = world_.clock.now + world_.random_ms(SimTime(20), SimTime(800));
  world_.start_pg(index_);
  world_.became_primary(index_);
  return {};
}

Status SimNode::start_standby(const std::string& leader) {
  if (auto ok = usable(); !ok) return ok;
  stop_foreign();
  if (auto ok = usable(); !ok) return ok;
  Pg& server = pg();
  if (server.running) return fail(ErrorCode::kConflict, "already running");
  server.running = true;
  server.standby_signal = true;
  server.upstream = leader;
  server.pretends_frozen_since.reset();
  server.not_streaming_since.reset();
  server.ready_at = world_.clock.now + world_.random_ms(SimTime(20), SimTime(500));
  world_.start_pg(index_);
  return {};
}

Status SimNode::follow(const std::string& leader) {
  if (auto ok = usable(); !ok) return ok;
  if (leader.empty() && world_.settings.freeze_keeps_streaming) {
    if (!pg().pretends_frozen_since) pg().pretends_frozen_since = world_.clock.now;
    return {};
  }
  pg().pretends_frozen_since.reset();
  if (pg().upstream != leader) pg().waiting_since = world_.clock.now;
  pg().upstream = leader;
  return {};
}

Result<Promotion> SimNode::promote(TimelineId target) {
  if (auto ok = usable(); !ok) return std::unexpected(ok.error());
  Pg& server = pg();
  if (!server.running || !server.standby_signal) {
    return fail(ErrorCode::kFailed, "the server is not a running standby");
  }
  // pg_promote() only asks: PostgreSQL then ends recovery, writes its end-of-recovery record
  // and checkpoint by itself — slow on a busy machine — while the agent waits for it, or is
  // frozen, or dies. The promotion ends on PostgreSQL's time, not the agent's.
  SimTime latency = world_.random_ms(SimTime(30), world_.settings.promotion_latency_max);
  server.promote_pending = true;
  world_.at(world_.clock.now + latency, index_,
            [world = &world_, index = index_, target] { world->finish_promotion(index, target); });
  if (world_.on_promote_requested) world_.on_promote_requested(index_);
  world_.spend(index_, latency);
  if (auto ok = usable(); !ok) return std::unexpected(ok.error());
  if (!server.primary()) {
    return fail(ErrorCode::kFailed, "the server went away during the promotion");
  }
  return Promotion{server.timeline(), {}};
}

bool SimNode::switched_to(TimelineId timeline) {
  const std::vector<Record>& wal = pg().wal;
  return std::any_of(wal.begin(), wal.end(),
                     [&](const Record& record) { return record.timeline == timeline; });
}

Status SimNode::stop(StopMode mode) {
  if (auto ok = usable(); !ok) return ok;
  if (!pg().running) return {};
  world_.stop_pg(index_, mode == StopMode::kFast);
  return {};
}

// It takes time, while the server takes writes and the world goes on: the hand-over it comes
// before acts on what its cycle read earlier. How long, from the clock (no draw: the seeds'
// schedules stay as they were up to it): 20 ms to `limit`, 300 ms at most.
Status SimNode::checkpoint(SimTime limit) {
  if (auto ok = usable(); !ok) return ok;
  if (!pg().running) return fail(ErrorCode::kUnavailable, "PostgreSQL does not run");
  SimTime took = std::min(limit, SimTime(20 + world_.clock.now.count() % 281));
  world_.spend(index_, took);
  if (auto ok = usable(); !ok) return ok;
  if (!pg().running) return fail(ErrorCode::kUnavailable, "PostgreSQL stopped meanwhile");
  return {};
}

Status SimNode::restart(const std::function<Status()>& stopped,
                        const std::function<void()>& spawned) {
  if (auto ok = stop(StopMode::kFast); !ok) return ok;
  if (auto ok = stopped(); !ok) return ok;
  Pg& server = pg();
  server.running = true;
  server.ready_at = world_.clock.now + world_.random_ms(SimTime(20), SimTime(500));
  world_.start_pg(index_);
  spawned();
  if (!server.standby_signal) world_.became_primary(index_);
  return {};
}

Status SimNode::rejoin() {
  if (auto ok = usable(); !ok) return ok;
  stop_foreign();
  if (auto ok = usable(); !ok) return ok;
  int primary = -1;
  int primaries = 0;
  for (int j = 0; j < static_cast<int>(world_.slots.size()); ++j) {
    // A node it cannot reach does not answer its probe (on one machine every node answers).
    bool probed = !world_.multi_host() || world_.reaches(index_, j);
    if (j != index_ && probed && world_.slots[j].pg.primary()) {
      primary = j;
      ++primaries;
    }
  }
  if (primaries != 1) {
    return fail(ErrorCode::kUnavailable, fmt::format("{} primaries run", primaries));
  }
  Pg& server = pg();
  if (server.primary()) return fail(ErrorCode::kConflict, "runs as a primary");
  if (server.running) world_.stop_pg(index_, true);
  // pg_rewind (or following as it is): slow too.
  world_.spend(index_, world_.random_ms(SimTime(50), SimTime(1500)));
  if (auto ok = usable(); !ok) return ok;
  const Pg& source = world_.slots[primary].pg;
  if (!source.primary() || server.running || !world_.network.connected(index_, primary)) {
    return fail(ErrorCode::kUnavailable, "the primary went away during the rejoin");
  }
  std::size_t common = 0;
  while (common < server.wal.size() && common < source.wal.size() &&
         server.wal[common].id == source.wal[common].id) {
    ++common;
  }
  // One rewind in eight that undoes anything finds the WAL before the fork removed on the
  // source: the node then waits for it for ever (seen after a host crash in CI). Random
  // scenarios only: the scripts bound their healing more tightly than the 30 s such a node
  // waits before it is copied again.
  if (common < server.wal.size() && world_.settings.faults > 0 && world_.rng() % 8 == 0) {
    world_.note(fmt::format("{} needs WAL that nobody has any more", config_name(index_)));
    server.wal_gap = true;
  }
  server.wal.resize(common);  // what pg_rewind undoes; the rest streams
  server.standby_signal = true;
  server.upstream = config_name(primary);
  server.running = true;
  server.not_streaming_since.reset();
  server.ready_at = world_.clock.now + world_.random_ms(SimTime(20), SimTime(500));
  world_.start_pg(index_);
  return {};
}

Status SimNode::reclone(const std::string& leader) {
  if (auto ok = usable(); !ok) return ok;
  if (pg().running) world_.stop_pg(index_, true);
  // The old data is moved aside and, if the copy fails, moved back (reinitialize_standby): a
  // failed reclone leaves it as it was, stopped (the model lost it: with the primary's host
  // then gone for good, nothing was left to lead — fresh seed 5033101).
  return clone(leader);
}

Result<Lsn> SimNode::shutdown_checkpoint() { return lsn_of(pg().wal.size()); }

// Above any real pid (PID_MAX_LIMIT is 2^22): what the agent sends a signal to cannot exist.
pid_t SimNode::postmaster() const {
  const Slot& slot = world_.slots[index_];
  return slot.pg.running && !slot.foreign_postmaster
             ? (1 << 30) + index_ + 16 * (slot.postmaster_starts % (1 << 20))
             : 0;
}

void SimNode::fence_others(const std::string& claimant) {
  for (int j = 0; j < static_cast<int>(world_.slots.size()); ++j) {
    bool promoting = world_.config.nodes[j].name == claimant && world_.slots[j].pg.running;
    if (j == index_ || (!world_.slots[j].pg.primary() && !promoting)) continue;
    if (world_.host_frozen(j)) {
      // SIGINT and SIGQUIT wait in a stopped process; SIGKILL ends it 1.5 s later.
      world_.spend(index_, SimTime(1500));
      if (world_.slots[j].pg.running) world_.stop_pg(j, false);
    } else {
      world_.spend(index_, world_.random_ms(SimTime(5), SimTime(300)));
      if (world_.slots[j].pg.running) world_.stop_pg(j, true);  // its WAL reaches us first
    }
  }
}

// core's plan_sync on the model, as SyncManager carries it out: a WAL position is a count of
// records, and a standby streams when it is up, connected and holds a prefix of this WAL.
Result<std::string> SimNode::update_sync(const ClusterView& view) {
  if (auto ok = usable(); !ok) return std::unexpected(ok.error());
  if (world_.settings.never_names_sync) return std::string();
  Pg& server = pg();
  std::string self = world_.config.nodes[index_].name;
  // SyncManager::configure: tandem.conf written, then a reload that may fail; a failure leaves
  // the belief unknown, and the next cycle settles it from the server (the canary keeps it).
  bool canary = world_.settings.no_sync_settle;
  auto configure = [&](const SyncNames& names, int any) -> Status {
    if (!canary) sync_believed_.reset();
    server.sync_file = names;
    server.sync_file_any = any;
    if (world_.slots[index_].reloads_fail) {
      return fail(ErrorCode::kUnavailable, "pg_ctl reload failed");
    }
    server.sync_names = names;
    server.sync_any = any;
    sync_believed_ = names;
    sync_believed_any_ = any;
    return {};
  };
  if (!sync_believed_) {
    if (canary) {
      sync_believed_ = server.sync_names;  // as SHOW says
      sync_believed_any_ = server.sync_any;
    } else if (auto ok = configure(server.sync_names, server.sync_any); !ok) {
      return std::unexpected(ok.error());
    }
  }
  SyncObservation seen{.configured = *sync_believed_,
                       .current = Lsn(server.wal.size()),
                       .count = world_.settings.sync_count,
                       .quorum = world_.settings.sync_quorum,
                       .configured_any = sync_believed_any_,
                       .member_frozen = view.a_member_promised_a_freeze()};
  read_sync_record(seen, view.sync_standbys, view.sync_leader, self, view.sync_quorum);
  for (int j = 0; j < static_cast<int>(world_.slots.size()); ++j) {
    const Pg& other = world_.slots[j].pg;
    bool streams = j != index_ && other.running && other.standby_signal && other.upstream == self &&
                   !other.not_streaming_since && world_.network.connected(index_, j) &&
                   is_prefix(other.wal, server.wal);
    // PostgreSQL reports the configured standbys as sync while they stream.
    if (streams) {
      seen.streaming.push_back(
          {config_name(j), Lsn(other.wal.size()),
           std::ranges::find(server.sync_names, config_name(j)) != server.sync_names.end()});
    }
  }
  SyncStep step = plan_sync(seen, sync_memory_, world_.slots[index_].clock->steady_now());
  ClusterLayout layout(world_.config.name);
  SimStore& store = *world_.slots[index_].store;
  Revision revision = view.sync_revision;
  auto write = [&](const SyncNames& standbys, int quorum) -> Status {
    auto written = write_sync_if_unchanged(store, layout, revision, self, standbys, quorum);
    if (!written) return std::unexpected(written.error());
    revision = *written;
    return {};
  };
  if (step.narrow) {
    if (auto ok = write(*step.narrow, step.narrow_quorum); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (step.configure) {
    if (auto ok = configure(*step.configure, step.configure_any); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (step.name) {
    if (auto ok = write(*step.name, step.name_quorum); !ok) return std::unexpected(ok.error());
  }
  sync_memory_ = std::move(step.memory);
  return step.why;
}

std::string SimNode::config_name(int index) const { return world_.config.nodes[index].name; }

// ---------------------------------------------------------------------------------------------
// World

ScenarioSettings settings_for(std::uint64_t seed, bool multi_host) {
  std::mt19937_64 rng(seed * 7919 + (multi_host ? 29 : 17));
  ScenarioSettings settings;
  settings.multi_host = multi_host;
  int shape = static_cast<int>(rng() % 100);
  if (multi_host) {  // a primary and one standby on etcd matter as much as three nodes
    settings.nodes = shape < 35 ? 2 : shape < 80 ? 3 : 5;
  } else {
    settings.nodes = shape < 65 ? 3 : shape < 85 ? 2 : shape < 97 ? 5 : 9;
  }
  settings.synchronous = rng() % 2 == 0;
  settings.faults = 1 + static_cast<int>(rng() % 4);
  settings.promotion_latency_max = SimTime(rng() % 3 == 0 ? 4000 : 1200);
  settings.rebuilds = rng() % 4 == 0;  // drawn after the others: theirs are older runs' draws
  settings.member_changes = multi_host && settings.nodes >= 3 && rng() % 4 == 0;  // and last
  // Then adoption (one at a time with member changes, which adopt does not expect meanwhile).
  settings.adopted = multi_host && !settings.member_changes && rng() % 5 == 0;
  // Then several synchronous standbys, where there are two standbys to wait for.
  if (settings.synchronous && settings.nodes >= 3 && rng() % 2 == 0) settings.sync_count = 2;
  // Then quorum commit, where a quorum may be smaller than the standbys there are.
  if (settings.synchronous && settings.nodes >= 3 && rng() % 2 == 0) settings.sync_quorum = true;
  // Then pauses of the load, where standbys rest (one machine).
  settings.quiet_load = !multi_host && rng() % 2 == 0;
  // Then every watchdog killed, and whether they may be started again at once.
  settings.watchdogs_killed = rng() % 5 == 0;
  settings.watchdogs_refused = settings.watchdogs_killed && rng() % 3 == 0;
  return settings;
}

World::World(std::uint64_t seed, ScenarioSettings scenario)
    : rng(seed),
      wake_rng(seed ^ 0x9e3779b97f4a7c15ULL),
      load_rng(seed ^ 0x5851f42d4c957f2dULL),
      settings(scenario),
      network(scenario.nodes, clock.now),
      layout_("sim") {
  config.name = "sim";
  config.ha.synchronous_mode = settings.synchronous;
  config.ha.synchronous_node_count = settings.sync_count;
  config.ha.synchronous_quorum = settings.sync_quorum;
  // The least the config allows (10 x ttl): a cycle stalled longer than this gives up the lease.
  config.ha.cycle_stall_limit = 10 * config.ha.ttl;
  // With etcd endpoints the agents fence by quorum (ha_config_for).
  if (settings.multi_host) config.etcd.endpoints = {"http://etcd.sim:2379"};
  for (int i = 0; i < settings.nodes; ++i) {
    NodeConfig node;
    node.name = fmt::format("node{}", i + 1);
    node.port = 5432 + i;
    node.data_dir = "/sim/" + node.name;
    if (settings.multi_host) {
      node.host = fmt::format("10.0.0.{}", i + 1);
      node.api_port = 8008;
    }
    config.nodes.push_back(node);
  }
  slots.resize(settings.nodes);
  for (int i = 0; i < settings.nodes; ++i) {
    slots[i].clock = std::make_unique<HostClock>(clock, settings.monotonic_clock);
    slots[i].local = std::make_unique<SimNode>(*this, i);
    slots[i].store = std::make_unique<SimStore>(*this, i, store_);
  }
}

World::~World() {
  // The calls still under way run to their end at once (objects live on their stacks).
  finishing_ = true;
  trace = false;
  fibers_.finish_all();
  for (Slot& slot : slots) slot.agent.reset();
  if (logger_before_trace_) spdlog::set_default_logger(logger_before_trace_);
}

int World::index_of(const std::string& name) const {
  for (int i = 0; i < static_cast<int>(config.nodes.size()); ++i) {
    if (config.nodes[i].name == name) return i;
  }
  return -1;
}

SimTime World::random_ms(SimTime low, SimTime high) {
  if (high <= low) return low;
  return low + SimTime(static_cast<long>(rng() % static_cast<std::uint64_t>((high - low).count())));
}

namespace {

class SimulatedTimeSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit SimulatedTimeSink(const World& world) : world_(world) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    fmt::print(stderr, "[t={} {}] {}\n", world_.clock.now.count(),
               world_.current >= 0 ? world_.config.nodes[world_.current].name : "-",
               std::string_view(message.payload.data(), message.payload.size()));
  }
  void flush_() override {}

 private:
  const World& world_;
};

}  // namespace

void World::trace_to_stderr() {
  trace = true;
  if (!logger_before_trace_) logger_before_trace_ = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("sim", std::make_shared<SimulatedTimeSink>(*this)));
  spdlog::set_level(spdlog::level::info);
}

void World::trace_if_asked(std::uint64_t seed) {
  const char* asked = std::getenv("TANDEM_SIM_TRACE_SCRIPT");
  if (asked != nullptr && std::strtoull(asked, nullptr, 10) == seed) trace_to_stderr();
}

void World::note(const std::string& what) {
  if (trace) fmt::print(stderr, "[t={}] {}\n", clock.now.count(), what);
}

void World::violation(const std::string& what) {
  note("VIOLATION: " + what);
  verdict_.violations.push_back(fmt::format("t={} ms: {}", clock.now.count(), what));
}

void World::schedule(SimTime at, Kind kind, int node, std::function<void()> call) {
  events_.push(Event{at, sequence_++, kind, node, std::move(call)});
}

void World::spend(int busy, SimTime ms) {
  Slot& slot = slots[busy];
  ++slot.busy;
  // An agent frozen meanwhile goes on only once it thaws; its cycle's thread, stalled in the
  // middle of a step, once the stall ends (while its lease keeper, whose store calls spend
  // here too, runs on).
  Fibers::Fiber* self = fibers_.current();
  bool keeper = self != nullptr ? Fibers::tag(self) % 2 == 1 : slot.keeper_busy;
  auto resumes = [&] {
    SimTime stalled = keeper ? SimTime(0) : slot.cycle_stalled_until;
    return std::max({slot.agent_frozen_until, slot.host_frozen_until, stalled});
  };
  if (self == nullptr) {  // a script's own call: the world runs on this stack meanwhile
    run_until(clock.now + ms);
    while (resumes() > clock.now) run_until(resumes());
  } else {
    SimTime wakes = clock.now + ms;
    // The world going: every call runs to its end, but each wait still steps aside once, so
    // that a call waiting for another's lock lets that one finish first (finish_all).
    if (finishing_) fibers_.wait();
    while (!finishing_ && std::max(wakes, resumes()) > clock.now) {
      auto wait = std::make_shared<Slot::Wait>(Slot::Wait{.fiber = self});
      slot.waits.push_back(wait);
      schedule(std::max(wakes, resumes()), Kind::kCall, busy,
               [this, busy, wait] { this->wake(busy, wait); });
      fibers_.wait();
      std::erase(slot.waits, wait);
    }
  }
  --slot.busy;
}

void World::wake(int index, const std::shared_ptr<Slot::Wait>& wait) {
  if (wait->woken) return;  // a resume woke it earlier
  wait->woken = true;
  int outer = current;
  current = index;
  fibers_.resume(wait->fiber);
  current = outer;
}

void World::park(int index, SimTime frozen, bool keeper) {
  Slot& slot = slots[index];
  (keeper ? slot.keeper_parked : slot.cycle_parked) = true;
  schedule(frozen, Kind::kCall, index, [this, index, keeper, epoch = slot.thaw_epoch] {
    Slot& parked = slots[index];
    if (parked.thaw_epoch != epoch) return;  // resumed: woken already
    (keeper ? parked.keeper_parked : parked.cycle_parked) = false;
    dispatch(Event{.at = clock.now, .kind = keeper ? Kind::kKeeper : Kind::kCycle, .node = index});
  });
}

std::optional<int> World::store_lock_holder() const {
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    if (slots[i].store_lock_until > clock.now && slots[i].alive && agent_frozen(i)) return i;
  }
  return std::nullopt;
}

std::int64_t World::agent_pid(int index) const {
  return 1'000'000 + index * 10'000 + static_cast<std::int64_t>(slots[index].generation);
}

void World::freeze_in_store_write(int index, SimTime length, bool traced) {
  Slot& slot = slots[index];
  slot.agent_frozen_from = clock.now;
  slot.agent_frozen_until = slot.store_lock_until = clock.now + length;
  slot.lock_traced = traced;
  note(fmt::format("  the agent of {} is frozen inside a store write{}", config.nodes[index].name,
                   traced ? ", under a debugger" : ""));
}

void World::resume_agent(int index) {
  Slot& slot = slots[index];
  if (!slot.alive || slot.agent_frozen_until <= clock.now || slot.lock_traced) return;
  note(fmt::format("the agent of {} is resumed (SIGCONT)", config.nodes[index].name));
  end_freeze(index);
}

void World::kill_stopped_agent(int index) {
  note(fmt::format("the agent of {} is killed: stopped holding the store's write lock",
                   config.nodes[index].name));
  kill_agent(index);  // its watchdog dies with it, its postmaster by PDEATHSIG
  end_freeze(index);  // its calls unwind now: a dead process's threads are frozen no more
  // Its service (Restart=on-failure, RestartSec=2) starts a new agent.
  schedule(clock.now + SimTime(2000), Kind::kCall, index, [this, index] { start_agent(index); });
}

void World::end_freeze(int index) {
  Slot& slot = slots[index];
  slot.agent_frozen_until = clock.now;
  slot.store_lock_until = clock.now;
  // Woken now even on a frozen host: each call looks again, and waits on for the host's thaw.
  ++slot.thaw_epoch;
  auto waits = slot.waits;
  for (const auto& wait : waits) {
    schedule(clock.now, Kind::kCall, index, [this, index, wait] { this->wake(index, wait); });
  }
  if (std::exchange(slot.cycle_parked, false)) schedule(clock.now, Kind::kCycle, index);
  if (std::exchange(slot.keeper_parked, false)) schedule(clock.now, Kind::kKeeper, index);
}

std::optional<std::int64_t> SimLockWatch::stopped_holder() {
  auto holder = world_.store_lock_holder();
  if (!holder) return std::nullopt;
  return world_.agent_pid(*holder);
}

Status SimLockWatch::unblock(std::int64_t pid, bool kill) {
  auto holder = world_.store_lock_holder();
  if (!holder || world_.agent_pid(*holder) != pid) return {};  // not that process any more
  if (kill) {
    world_.kill_stopped_agent(*holder);
    return {};
  }
  world_.resume_agent(*holder);
  return {};
}

void World::run_until(SimTime until) {
  while (!events_.empty() && events_.top().at <= until) {
    Event event = events_.top();
    events_.pop();
    thaw_hosts(event.at);
    clock.now = std::max(clock.now, event.at);
    dispatch(std::move(event));
    check_invariants();
  }
  thaw_hosts(until);
  clock.now = std::max(clock.now, until);
}

// Multi-host: a host that thaws resumes every process at once, its watchdog and its pinger
// racing. The watchdog, whose deadline passed while it was frozen, checks before PostgreSQL
// accepts a write; in half the thaws the pinger is quicker still: a ping sent at the thaw,
// answered at once by a majority (which may meanwhile have seen another node take over), is
// handed to the watchdog first (issue 16.3: such answers kept a fenced primary writing, until
// they could no longer bring back a lapsed right).
void World::thaw_hosts(SimTime until) {
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    Slot& slot = slots[i];
    if (!slot.thaw_pending || slot.host_frozen_until > until) continue;
    slot.thaw_pending = false;
    clock.now = std::max(clock.now, slot.host_frozen_until);
    int reached = 1;  // itself
    for (int j = 0; j < static_cast<int>(slots.size()); ++j) {
      reached += j != i && slots[j].alive && network.connected(i, j) && !agent_frozen(j) ? 1 : 0;
    }
    bool majority = reached > static_cast<int>(slots.size()) / 2;
    if (slot.alive && majority && rng() % 2 == 0) {
      slot.watchdog->keep_alive_by_peers(slot.clock->steady_now());
    }
    if (settings.thaw_writes_first) {
      write();
      replicate();
    }
    if (slot.alive) watchdog_check(i);
    check_invariants();
  }
}

// Multi-host: a host suspended (a laptop's lid, a VM paused by its hypervisor): every process
// stops, as in a freeze, and CLOCK_MONOTONIC stands still while CLOCK_BOOTTIME goes on.
void World::suspend_host(int index, SimTime length) {
  Slot& slot = slots[index];
  note(fmt::format("{} is suspended for {} ms", config.nodes[index].name, length.count()));
  if (!host_frozen(index)) slot.host_frozen_from = clock.now;
  slot.host_frozen_until = std::max(slot.host_frozen_until, clock.now + length);
  slot.thaw_pending = true;
  slot.clock->suspend(clock.now, clock.now + length);
}

bool World::agent_frozen_at(int index, SimTime when) const {
  const Slot& slot = slots[index];
  return (slot.agent_frozen_from <= when && when < slot.agent_frozen_until) ||
         (slot.host_frozen_from <= when && when < slot.host_frozen_until);
}

bool World::writable(int index) const {
  return slots[index].pg.primary() && (!multi_host() || !host_frozen(index));
}

void World::dispatch(Event event) {
  switch (event.kind) {
    case Kind::kCycle:
      cycle(event.node);
      return;
    case Kind::kKeeper: {
      Slot& slot = slots[event.node];
      if (!slot.alive || !slot.agent) return;
      SimTime frozen = std::max(slot.agent_frozen_until, slot.host_frozen_until);
      if (frozen > clock.now) {
        park(event.node, frozen, true);
        return;
      }
      // One thread: while its last (slow) call is out, it does not tick again.
      schedule(clock.now + config.ha.ttl / 16, Kind::kKeeper, event.node);
      if (slot.keeper_busy || settings.round_one) return;
      int node = event.node;
      fibers_.run([this, node] { keeper_tick(node); }, 2 * node + 1);
      return;
    }
    case Kind::kWatchdog:
      watchdog(event.node);
      return;
    case Kind::kReplicate:
      replicate();
      schedule(clock.now + kTick, Kind::kReplicate, -1);
      return;
    case Kind::kWrite:
      write();
      schedule(clock.now + kTick, Kind::kWrite, -1);
      return;
    case Kind::kCall:
      event.call();
      return;
  }
}

void World::cycle(int index) {
  Slot& slot = slots[index];
  if (!slot.alive || !slot.agent) return;
  if (slot.busy > 0) {
    schedule(clock.now + SimTime(10), Kind::kCycle, index);
    return;
  }
  SimTime frozen =
      std::max({slot.agent_frozen_until, slot.host_frozen_until, slot.cycle_stalled_until});
  if (frozen > clock.now) {
    park(index, frozen, false);
    return;
  }
  int outer = current;
  current = index;
  fibers_.run([this, index] { run_cycle(index); }, 2 * index);
  current = outer;
}

void World::run_cycle(int index) {
  Slot& slot = slots[index];
  SimTime started = clock.now;
  slot.cycle_started = started;
  ++verdict_.cycles;
  ++slot.busy;
  slot.agent->serve_request();
  if (slot.alive && slot.agent && !slot.destroy_pending) slot.agent->cycle();
  // The store's member list left this node out: the agent stops as run() does (PostgreSQL
  // shut down cleanly, the lease handed over), and its process exits.
  bool removed = slot.alive && slot.agent && !slot.destroy_pending && slot.agent->removed();
  if (removed) slot.agent->shut_down();
  --slot.busy;
  if (removed) {
    note(fmt::format("{}'s agent stopped: no longer a member", config.nodes[index].name));
    kill_agent(index);
    return;
  }
  if (slot.destroy_pending) {
    destroy_if_pending(index);
    return;
  }
  // One rebuild waits at a time, as the agent's run() rebuilds once between two cycles (they
  // piled up, one per cycle, while a rebuild waited for a stalled thread).
  if (slot.alive && slot.agent && slot.agent->wants_rebuild() && !slot.rebuild_waiting) {
    slot.rebuild_waiting = true;
    schedule(clock.now + SimTime(1), Kind::kCall, index,
             [this, index, generation = slot.generation] { rebuild_agent(index, generation); });
  }
  // As Agent::run sleeps (sleep_from): rest_sleep's time, a loop interval at least. A wake
  // ends it at once (one while the cycle ran: the eventfd is still readable), but once
  // kEarlyCycles came early within a lease not before a loop interval from the cycle's start.
  SleepPlan plan =
      plan_sleep(slot.agent->sleep_after_cycle(),
                 slot.early_cycles.within(clock.now, config.ha.ttl), config.ha.loop_interval);
  // Decided once, as the agent decides it when its sleep starts (found by review: counted
  // again at the wake, an early cycle that had meanwhile aged out let the wake in sooner).
  slot.deaf_until = started + plan.deaf_until;
  if (plan.until > config.ha.loop_interval) {
    ++verdict_.rest_sleeps;
    if (slot.pg.primary()) ++verdict_.primary_rest_sleeps;
  }
  SimTime at = std::max(started + plan.until, clock.now + SimTime(1));
  if (std::exchange(slot.wake_pending, false)) {
    at = std::max(started + plan.deaf_until, clock.now + SimTime(1));
  }
  sleep_until(index, at);
}

void World::sleep_until(int index, SimTime at) {
  Slot& slot = slots[index];
  slot.rest_until = at;
  schedule(at, Kind::kCall, index,
           [this, index, token = ++slot.rest_token, generation = slot.generation] {
             Slot& resting = slots[index];
             if (resting.rest_token != token || resting.generation != generation) return;
             resting.rest_until = SimTime(0);
             resting.early_cycles.after_sleep(clock.now - resting.cycle_started, clock.now,
                                              config.ha.loop_interval);
             cycle(index);
           });
}

std::vector<std::string> SimWaker::wake(const std::vector<std::string>& nodes) {
  std::vector<std::string> woken;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    // The first tried twice, as HttpPeerWaker does.
    if (world_.send_wake(from_, nodes[i]) || (i == 0 && world_.send_wake(from_, nodes[i]))) {
      woken.push_back(nodes[i]);
    }
  }
  return woken;
}

bool World::send_wake(int from, const std::string& node) {
  int to = index_of(node);
  ++verdict_.wakes;
  // POST /wake: lost with its connection now and then (a full backlog, a restart), or cut off.
  if (to < 0 || wake_rng() % 4 == 0 ||
      (multi_host() && from >= 0 && !network.connected(from, to))) {
    ++verdict_.wakes_lost;
    note(fmt::format("  the wake of {} is lost", node));
    return false;
  }
  SimTime delay(1 + static_cast<std::int64_t>(wake_rng() % 5));
  schedule(clock.now + delay, Kind::kCall, to, [this, to] { wake_agent(to); });
  return true;
}

void World::wake_agent(int index) {
  Slot& slot = slots[index];
  if (!slot.alive || !slot.agent) return;
  if (slot.rest_until <= clock.now) {
    // In a cycle, it shortens the sleep after it (the eventfd stays readable); in a short sleep
    // it is cleared with it, and changes nothing.
    if (slot.busy > 0) slot.wake_pending = true;
    return;
  }
  SimTime earliest = std::max(clock.now, slot.deaf_until);
  if (earliest >= slot.rest_until) return;
  sleep_until(index, earliest);  // the sleep's own event passes
}

void World::keeper_tick(int index) {
  Slot& slot = slots[index];
  slot.keeper_busy = true;
  ++slot.busy;
  slot.agent->lease_keeper().tick(config.ha.ttl / 4);
  --slot.busy;
  slot.keeper_busy = false;
  destroy_if_pending(index);
}

void World::destroy_if_pending(int index) {
  Slot& slot = slots[index];
  if (!slot.destroy_pending || slot.busy > 0) return;
  slot.agent.reset();
  slot.destroy_pending = false;
}

void World::watchdog(int index) {
  Slot& slot = slots[index];
  if (!slot.alive || settings.round_one) return;  // it dies with the agent (and PostgreSQL)
  schedule(clock.now + SimTime(10), Kind::kWatchdog, index);
  if (host_frozen(index)) return;
  watchdog_check(index);
}

void World::watchdog_check(int index) {
  Slot& slot = slots[index];
  SimWatchdog& dog = *slot.watchdog;
  if (dog.killed || dog.watched == 0 || dog.watched != slot.local->postmaster()) return;
  auto now = slot.clock->steady_now();
  if (dog.confirmed && now - *dog.confirmed < config.ha.renew_deadline) return;
  // One machine: a fast shutdown, so that its flushed WAL reaches the standbys. Several: an
  // immediate one (it keeps the WAL pg_rewind needs; the standbys are out of reach anyway).
  stop_pg(index, !multi_host());
  dog.fenced = now;
  dog.watched = 0;
}

// The agent's on_lost: a renewal found another holder; the postmaster that may accept writes
// gets SIGQUIT at once, from the keeper's thread.
void World::lease_lost(int index) {
  Slot& slot = slots[index];
  if (slot.watchdog->writable != 0 && slot.watchdog->writable == slot.local->postmaster()) {
    note(fmt::format("{} lost its lease: its postmaster is stopped", config.nodes[index].name));
    stop_pg(index, false);
  }
}

void World::start_pg(int index) {
  ++slots[index].postmaster_starts;
  slots[index].pg.receiver_ran = false;
  if (slots[index].pg_broken_until <= clock.now) return;
  SimTime dies = slots[index].pg.ready_at;
  schedule(dies, Kind::kCall, index, [this, index] {
    if (slots[index].pg.running) stop_pg(index, false);
  });
}

void World::stop_pg(int index, bool clean) {
  Pg& server = slots[index].pg;
  if (clean && !host_frozen(index)) {
    // The WAL senders pass every flushed record to the standbys streaming from it.
    const std::string& name = config.nodes[index].name;
    for (int j = 0; j < static_cast<int>(slots.size()); ++j) {
      Pg& other = slots[j].pg;
      if (j != index && other.running && other.standby_signal && other.upstream == name &&
          reaches(index, j) && is_prefix(other.wal, server.wal)) {
        other.wal = server.wal;
      }
    }
  }
  server.running = false;
  slots[index].foreign_postmaster = false;
  server.promote_pending = false;  // PostgreSQL removes a promote signal file when it starts
  for (auto it = pending_acks_.begin(); it != pending_acks_.end();) {
    it = it->second == config.nodes[index].name ? pending_acks_.erase(it) : std::next(it);
  }
}

void World::replicate() {
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    Pg& server = slots[i].pg;
    if (!server.running || !server.standby_signal || host_frozen(i)) continue;
    int upstream = index_of(server.upstream);
    bool streams = !server.wal_gap && upstream >= 0 && upstream != i &&
                   slots[upstream].pg.running && reaches(i, upstream) &&
                   clock.now >= server.ready_at && is_prefix(server.wal, slots[upstream].pg.wal);
    if (streams) {
      server.wal = slots[upstream].pg.wal;
      server.receiver_ran = true;
      server.not_streaming_since.reset();
    } else if (!server.not_streaming_since) {
      server.not_streaming_since = clock.now;
    }
    if (!server.upstream.empty()) {
      server.receiver_stopped_since.reset();
    } else if (!server.receiver_stopped_since) {
      server.receiver_stopped_since = clock.now;
    }
  }
  // A commit waiting for its synchronous standbys returns once every one of them has it, or
  // once the primary stops waiting (no synchronous standby configured any more).
  for (auto it = pending_acks_.begin(); it != pending_acks_.end();) {
    const Pg& primary = slots[index_of(it->second)].pg;
    // Every one of them, or any sync_any of them (quorum commit); the canary, the first only.
    std::size_t waited = primary.sync_any > 0 ? static_cast<std::size_t>(primary.sync_any)
                                              : primary.sync_names.size();
    std::size_t listed = primary.sync_any > 0 ? primary.sync_names.size() : waited;
    if (settings.waits_for_first_only) listed = waited = std::min<std::size_t>(waited, 1);
    std::size_t have = 0;
    for (std::size_t k = 0; k < listed; ++k) {
      int standby = index_of(primary.sync_names[k]);  // never "*": no strict mode here
      if (standby >= 0 && std::ranges::any_of(slots[standby].pg.wal, [&](const Record& record) {
            return record.id == it->first;
          })) {
        ++have;
      }
    }
    bool done = have >= waited;
    if (done) {
      acknowledged_.insert(it->first);
      it = pending_acks_.erase(it);
    } else {
      ++it;
    }
  }
}

void World::write() {
  if (settings.quiet_load) {
    if (clock.now >= quiet_until_) {  // writes for a while, then a pause
      writes_until_ = clock.now + SimTime(1000 + static_cast<std::int64_t>(load_rng() % 3000));
      quiet_until_ = writes_until_ + SimTime(300 + static_cast<std::int64_t>(load_rng() % 1700));
    }
    if (clock.now >= writes_until_) return;
  }
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    Pg& server = slots[i].pg;
    if (!server.primary() || clock.now < server.ready_at || host_frozen(i)) continue;
    std::uint64_t id = next_record_++;
    server.wal.push_back(Record{id, server.timeline()});
    if (settings.synchronous && !server.sync_names.empty()) {
      pending_acks_[id] = config.nodes[i].name;
    } else {
      acknowledged_.insert(id);
    }
  }
}

void World::promoted(int index, TimelineId timeline) {
  ++verdict_.promotions;
  const Pg& server = slots[index].pg;
  std::string fork = timeline == 1 ? "bootstrap" : fingerprint(server.wal, server.wal.size());
  auto [it, inserted] = timelines_.emplace(timeline, fork);
  if (!inserted && it->second != fork) {
    violation(fmt::format("timeline {} used twice: {} forked it at {}, {} earlier at {}", timeline,
                          config.nodes[index].name, fork, "another node", it->second));
  }
}

void World::finish_promotion(int index, TimelineId target) {
  Pg& server = slots[index].pg;
  if (!server.promote_pending || !server.running || !server.standby_signal) return;
  if (host_frozen(index)) {  // a frozen host's PostgreSQL goes on once it thaws
    at(slots[index].host_frozen_until, index,
       [this, index, target] { finish_promotion(index, target); });
    return;
  }
  server.promote_pending = false;
  TimelineId timeline = std::max(target, server.timeline() + 1);
  promoted(index, timeline);
  server.wal.push_back(Record{rng(), timeline});
  server.standby_signal = false;
  server.upstream.clear();
  server.sync_names.clear();
  server.sync_file.clear();  // a standby's tandem.conf names none
  server.sync_any = server.sync_file_any = 0;
  became_primary(index);
}

void World::became_primary(int index) {
  if (!settings.synchronous) return;
  const Pg& server = slots[index].pg;
  std::set<std::uint64_t> present;
  for (const Record& record : server.wal) present.insert(record.id);
  int missing = 0;
  for (std::uint64_t id : acknowledged_) missing += present.count(id) == 0;
  if (missing > 0) {
    violation(fmt::format("{} became primary without {} acknowledged commits (synchronous mode)",
                          config.nodes[index].name, missing));
  }
}

std::string World::fingerprint(const std::vector<Record>& wal, std::size_t length) const {
  return length == 0 ? "empty" : fmt::format("{}@{}", wal[length - 1].id, length);
}

void World::check_invariants() {
  std::vector<std::string> primaries;
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    if (writable(i)) primaries.push_back(config.nodes[i].name);
  }
  // Once per episode: every event of one would say the same.
  if (primaries.size() > 1 && !split_brain_) {
    std::string names;
    for (const std::string& name : primaries) names += " " + name;
    violation("two writable primaries:" + names);
  }
  split_brain_ = primaries.size() > 1;
}

void World::start_agent(int index) {
  Slot& slot = slots[index];
  if (slot.alive || slot.gone_for_good) return;
  if (slot.busy > 0) {  // the dead agent's cycle is still unwinding
    schedule(clock.now + SimTime(10), Kind::kCall, index, [this, index] { start_agent(index); });
    return;
  }
  // Multi-host: the member list is read from the store before anything counts over it
  // (cli/agent_command.cc, take_member_list): the start waits for the store; a node off the
  // list does not start.
  ClusterConfig runs = config;
  if (multi_host()) {
    if (slot.store_down_until > clock.now || store_clock.stopped() ||
        !network.connected(index, network.store())) {
      schedule(clock.now + SimTime(1000), Kind::kCall, index,
               [this, index] { start_agent(index); });
      return;
    }
    auto snapshot = store_.read(layout_.member_list());
    const StoredValue* stored = snapshot ? snapshot->find(layout_.member_list()) : nullptr;
    if (auto list = stored ? decode_member_list(stored->value) : std::nullopt) {
      runs = with_member_list(config, *list);
    }
    if (runs.find_node(config.nodes[index].name) == nullptr) {
      note(fmt::format("{} is not a member (list {}): its agent does not start",
                       config.nodes[index].name, runs.member_list));
      (void)store_.put(layout_.list_ack(config.nodes[index].name), encode_list_ack(ack_of(runs)),
                       std::nullopt);
      return;
    }
  }
  slot.config = std::make_unique<ClusterConfig>(runs);
  slot.destroy_pending = false;           // the dead agent, if still here, goes now
  slot.cycle_stalled_until = SimTime(0);  // a new process: its cycle's thread is a new one
  slot.store_connection_dropped = true;   // and no connection to the store yet
  slot.agent.reset();
  slot.watchdog = std::make_unique<SimWatchdog>();
  slot.watchdog->clock = slot.clock.get();
  slot.watchdog->deadline = config.ha.renew_deadline;
  slot.watchdog->keep_alive(slot.clock->steady_now());
  slot.alive = true;
  ++slot.generation;
  slot.rest_until = SimTime(0);  // a new process sleeps no rest of the old one's
  slot.early_cycles.clear();
  ++slot.rest_token;
  slot.wake_pending = false;
  if (multi_host()) {
    slot.contacts = std::make_unique<ContactBook>(config.nodes[index].name, names_of(runs),
                                                  slot.clock->steady_now(), runs.member_list,
                                                  runs.previous_members);
  }
  slot.board = std::make_unique<AgentBoard>();  // its API: pings, and requests at any moment
  slot.store_lock_until = SimTime(0);
  slot.lock_traced = false;
  if (!multi_host() && !settings.no_lock_watch) {
    slot.lock_watch = std::make_unique<SimLockWatch>(*this);
  }
  if (settings.count_new_list_alone && slot.contacts) slot.contacts->end_change();
  build_agent(index, nullptr);
  if (multi_host()) pings_.start(index);
  schedule(clock.now + random_ms(SimTime(1), SimTime(100)), Kind::kCycle, index);
  schedule(clock.now + SimTime(5), Kind::kKeeper, index);
  schedule(clock.now + SimTime(10), Kind::kWatchdog, index);
}

void World::build_agent(int index, const AgentCarry* carry) {
  Slot& slot = slots[index];
  if (!slot.waker) slot.waker = std::make_unique<SimWaker>(*this, index);
  slot.agent =
      std::make_unique<Agent>(AgentParts{.config = *slot.config,
                                         .self = *slot.config->find_node(config.nodes[index].name),
                                         .node = *slot.local,
                                         .store = *slot.store,
                                         .clock = *slot.clock,
                                         .watchdog = slot.watchdog.get(),
                                         .contacts = slot.contacts.get(),
                                         .board = slot.board.get(),
                                         .keeper_thread = false,
                                         .layout = &layout_,
                                         .store_lock = slot.lock_watch.get(),
                                         .carry = carry,
                                         .waker = slot.waker.get(),
                                         .wakeable = true});
  // Its cycle and its keeper are fibers of this thread: a write that finds the other's under
  // way lets time pass until it is done, as the blocked thread would.
  slot.agent->lease_keeper().set_lock_wait([this, index] { spend(index, SimTime(1)); });
  // The agent's own on_lost sends SIGQUIT to its writable postmaster; here that is the model's.
  slot.agent->lease_keeper().on_lost([this, index] { lease_lost(index); });
  // And its on_stalled stops that postmaster and then answers pings "may not write".
  slot.agent->lease_keeper().on_stalled([this, index](std::chrono::milliseconds silent) {
    if (!slots[index].agent->others_may_lead()) return false;
    note(fmt::format("{}'s cycle silent for {} ms: the keeper gives up the lease",
                     config.nodes[index].name, silent.count()));
    lease_lost(index);
    slots[index].board->set_stalled_out();
    return true;
  });
}

void World::rebuild_agent(int index, std::optional<std::uint64_t> generation) {
  Slot& slot = slots[index];
  if (generation && *generation != slot.generation) return;  // for a process gone since
  if (slot.busy > 0 || agent_frozen(index) || slot.cycle_parked || slot.keeper_parked) {
    if (slot.alive && slot.agent && !slot.destroy_pending) {
      schedule(clock.now + SimTime(5), Kind::kCall, index,
               [this, index, generation] { rebuild_agent(index, generation); });
      return;
    }
  }
  slot.rebuild_waiting = false;
  if (!slot.alive || !slot.agent || slot.destroy_pending) return;  // nothing runs to rebuild
  std::optional<ClusterConfig> next;
  if (slot.agent->wants_rebuild()) next = slot.agent->rebuild_config();
  note(fmt::format("{}'s agent is built again ({})", config.nodes[index].name,
                   next ? fmt::format("member list {}", next->member_list) : "as a change would"));
  AgentCarry carry = slot.agent->retire();
  slot.agent.reset();
  slot.early_cycles.clear();  // the new Agent counts its own early cycles
  if (next) {
    bool skipped = next->member_list > slot.config->member_list + 1;  // left behind
    slot.config = std::make_unique<ClusterConfig>(*next);
    auto set = skipped ? &ContactBook::start_afresh : &ContactBook::set_members;
    (slot.contacts.get()->*set)(names_of(*next), next->member_list, slot.clock->steady_now(),
                                next->previous_members);
    if (settings.count_new_list_alone) slot.contacts->end_change();
  }
  build_agent(index, &carry);
}

// The agent's process is gone: its parked cycle and keeper die with it, its rest and a wake
// meant for it too, and a new agent starts chains of its own.
void World::end_chains(int index) {
  Slot& slot = slots[index];
  ++slot.thaw_epoch;
  ++slot.rest_token;
  slot.rest_until = SimTime(0);
  slot.wake_pending = false;
  slot.early_cycles.clear();
  slot.rebuild_waiting = false;  // a rebuild scheduled for it finds the process gone
  slot.cycle_parked = slot.keeper_parked = false;
}

// ScenarioSettings::watchdogs_killed: a second before the first fault, every running watchdog
// is killed (by hand — `pkill tandem-watchdog` —, the OOM killer); each stops nothing until its
// agent starts it again, which fails for 3 s where the settings say so (a fork refused). Drawn
// from no random number: the faults that follow are those the seed always gave, and find them
// dead (or restarted).
void World::kill_watchdogs() {
  // Refused, the primary stops writes and gives its lease up: the lead moves once.
  if (settings.watchdogs_refused) ++promotion_budget_;
  note(fmt::format("every watchdog is killed{}",
                   settings.watchdogs_refused ? "; none can be started again for 3 s" : ""));
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    Slot& slot = slots[i];
    if (!slot.alive) continue;
    slot.watchdog->killed = true;
    slot.watchdog->restart_refused = settings.watchdogs_refused;
    schedule(clock.now + SimTime(3000), Kind::kCall, i,
             [this, i] { slots[i].watchdog->restart_refused = false; });
  }
}

// A host crash: the agent dies, and with it (PR_SET_PDEATHSIG) its PostgreSQL and watchdog.
void World::kill_agent(int index) {
  Slot& slot = slots[index];
  if (!slot.alive) {
    // A host crash before adoption started its agent: its server, built by hand, dies alone.
    if (adoption_pending_ && slot.pg.running) stop_pg(index, false);
    return;
  }
  slot.alive = false;
  end_chains(index);
  if (slot.busy > 0) {
    slot.destroy_pending = true;
  } else {
    slot.agent.reset();
  }
  if (slot.pg.running) stop_pg(index, false);
}

void World::inject_fault() {
  int target = static_cast<int>(rng() % slots.size());
  // Mostly the primary: that is where faults hurt.
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    if (slots[i].pg.primary() && rng() % 3 != 0) target = i;
  }
  Slot& slot = slots[target];
  SimTime back = clock.now + random_ms(SimTime(300), SimTime(4000));
  if (rng() % 6 == 0) {  // a person's request through the API or the CLI, at any moment
    inject_request(target);
    return;
  }
  int fault = static_cast<int>(rng() % (multi_host() ? 18 : 11));
  promotion_budget_ += fault == 8 ? 2 : 1;
  note(fmt::format("fault {} on {} (until t={})", fault, config.nodes[target].name, back.count()));
  switch (fault) {
    case 0:  // host crash; in asynchronous mode, one in five never returns (a failure that
             // never heals: the others go on without it, whatever it was doing)
      kill_agent(target);
      if (!settings.synchronous && rng() % 5 == 0 &&
          std::none_of(slots.begin(), slots.end(), [](const Slot& s) { return s.gone_for_good; })) {
        slots[target].gone_for_good = true;
        note(fmt::format("{} is gone for good", config.nodes[target].name));
        break;
      }
      schedule(back, Kind::kCall, target, [this, target] { start_agent(target); });
      break;
    case 1:  // postmaster crash
      if (slot.pg.running && !host_frozen(target)) stop_pg(target, false);
      break;
    case 2:  // the agent frozen (SIGSTOP), its watchdog not; often in the middle of a step
      if (rng() % 3 == 0) {  // or only its cycle's thread, its other threads running on
        // One in four of those for longer than the liveness bound (a call that never returns,
        // as far as the others can tell): the keeper must not renew for it all along. Chosen
        // from `back`, so that the seeds' schedules stay as they were. Often in the middle of
        // a step (a promotion, a rejoin, a store call), which goes on once the stall ends.
        if (back.count() % 4 == 0) back = clock.now + SimTime(30000);
        for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
          if (slots[i].busy > 0 && !slots[i].keeper_busy && rng() % 2 == 0) target = i;
        }
        // A cycle stalled already stays stalled until the later end (its call waits for that):
        // a shorter second stall must not make the checks take it for running (fresh seed
        // 74000033013: the sync record's bound counted against a primary still stalled).
        slots[target].cycle_stalled_until = std::max(slots[target].cycle_stalled_until, back);
        note(fmt::format("  only the cycle of {} stalls, until t={}", config.nodes[target].name,
                         slots[target].cycle_stalled_until.count()));
        break;
      }
      for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
        if (slots[i].busy > 0 && rng() % 2 == 0) target = i;
      }
      slots[target].agent_frozen_from = clock.now;
      slots[target].agent_frozen_until = back;
      note(fmt::format("  the agent of {} is frozen", config.nodes[target].name));
      // One machine: one in three inside a store write, holding the store's write lock; one in
      // four of those under a debugger (a SIGCONT does not end it), and then for longer than
      // the liveness bound. Chosen from `back`, as above.
      if (!multi_host() && back.count() % 3 == 1) {
        bool traced = back.count() % 4 == 2;
        freeze_in_store_write(target, traced ? SimTime(30000) : back - clock.now, traced);
      }
      break;
    case 3:  // the whole host frozen
      // A host already frozen or suspended stays so at least as long as it was to: a second,
      // shorter freeze ended a suspension early, and the host ran on with its clock suspended
      // (long run, seed 1100076031: its agent, waiting on a clock that stood still, never named
      // a synchronous standby, and the checker took it for running).
      if (!host_frozen(target)) slot.host_frozen_from = clock.now;
      slot.host_frozen_until =
          std::max(slot.host_frozen_until, clock.now + random_ms(SimTime(200), SimTime(2500)));
      slot.thaw_pending = multi_host();
      if (multi_host() && rng() % 3 == 0)
        suspend_host(target, random_ms(SimTime(2000), SimTime(15000)));
      break;
    case 4:  // the store out of reach for this agent
      slot.store_down_until = back;
      break;
    case 5:  // a clean stop of the node, started again later
      if (slot.alive && slot.busy == 0 && slot.agent && !host_frozen(target) &&
          slot.agent_frozen_until <= clock.now) {
        // On the agent's own fiber, as its cycle: its keeper may tick meanwhile, and the agent
        // goes only once neither is under way (it went at once, under a waiting keeper).
        fibers_.run(
            [this, target, back] {
              Slot& stopping = slots[target];
              ++stopping.busy;
              stopping.agent->shut_down();
              --stopping.busy;
              stopping.alive = false;
              // Its cycle's thread, parked by a stall that outlasts the process (seed
              // 803439476: the new agent's rebuild waited 27 s for the old one's thread).
              end_chains(target);
              stopping.destroy_pending = true;
              destroy_if_pending(target);
              schedule(std::max(back, clock.now + SimTime(1)), Kind::kCall, target,
                       [this, target] { start_agent(target); });
            },
            2 * target);
      }
      break;
    case 6:  // a switchover requested by a person
      request_switchover();
      break;
    case 7:  // every node crashes, then all come back
      for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
        kill_agent(i);
        schedule(back + random_ms(SimTime(0), SimTime(500)), Kind::kCall, i,
                 [this, i] { start_agent(i); });
      }
      break;
    case 9:  // the store answers slowly, for this agent
      slot.store_slow_until = clock.now + random_ms(SimTime(1000), SimTime(5000));
      break;
    case 10:  // PostgreSQL cannot start for a while, then crashes (a bad setting, fixed later)
      slot.pg_broken_until = clock.now + random_ms(SimTime(2000), SimTime(15000));
      if (slot.pg.running && !host_frozen(target)) stop_pg(target, false);
      break;
    case 11:
    case 12:
    case 13:
    case 14:
    case 15:
    case 16:
    case 17:
      inject_partition(target, fault, clock.now + random_ms(SimTime(300), SimTime(8000)));
      break;
    case 8:  // a second crash right after the first failover
      kill_agent(target);
      schedule(back, Kind::kCall, target, [this, target] { start_agent(target); });
      schedule(clock.now + random_ms(SimTime(1200), SimTime(3000)), Kind::kCall, -1, [this] {
        for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
          if (slots[i].pg.primary()) {
            kill_agent(i);
            schedule(clock.now + random_ms(SimTime(300), SimTime(3000)), Kind::kCall, i,
                     [this, i] { start_agent(i); });
          }
        }
      });
      break;
  }
}

// A person's request, whatever the cluster is doing: a restart or a reinitialization of a node
// (the API's, served by its agent between cycles), a switchover to a named node, or a failover
// forced to a random node (without --allow-data-loss: the guarantees hold).
void World::inject_request(int target) {
  promotion_budget_ += 1;  // a switchover or failover moves the lead once
  std::string name = config.nodes[target].name;
  switch (rng() % 4) {
    case 0:
    case 1: {
      NodeRequest request = rng() % 2 == 0 ? NodeRequest::kRestart : NodeRequest::kReinitialize;
      note(fmt::format("{} of {} requested",
                       request == NodeRequest::kRestart ? "a restart" : "a reinitialization",
                       name));
      Slot& slot = slots[target];
      // A request reaches a live agent's API (a frozen one's waits in its socket).
      if (slot.alive && slot.board && slot.board->post(request)) wake_agent(target);
      break;
    }
    case 2:
      note("a switchover to " + name + " requested");
      request_switchover(name);
      break;
    case 3:
      request_failover(name);
      break;
  }
}

// Multi-host: the network faults. Every cut heals on its own at `back`.
void World::inject_partition(int target, int fault, SimTime back) {
  int nodes = static_cast<int>(slots.size());
  switch (fault) {
    case 11:  // the host cut off from everything
      network.isolate(target, true, true, back);
      break;
    case 12:                 // the host cut off from the other agents, not from the store
      if (rng() % 2 == 0) {  // one way: what it sends arrives, nothing it is sent does
        for (int i = 0; i < nodes; ++i) network.cut_one_way(i, target, back);
        break;
      }
      network.isolate(target, true, false, back);
      break;
    case 13:                 // the host cut off from the store only
      if (rng() % 2 == 0) {  // one way: its requests arrive (writes are applied), no answer does
        network.cut_one_way(network.store(), target, back);
        break;
      }
      network.isolate(target, false, true, back);
      break;
    case 14:  // the store stopped (every etcd member down): its leases stand still
      store_clock.stop(clock.now, back);
      last_heal_ = std::max(last_heal_, back);
      break;
    case 17:  // the store cut off from every host (it runs on: its leases expire)
      for (int i = 0; i < nodes; ++i) network.cut(i, network.store(), back);
      break;
    case 15: {  // two sides, the store with one of them
      std::vector<bool> side(nodes);
      for (int i = 0; i < nodes; ++i) side[i] = rng() % 2 == 0;
      side[target] = true;
      network.split(side, rng() % 2 == 0, back);
      break;
    }
    case 16: {  // one link between two hosts, both ways or one
      int other = (target + 1 + static_cast<int>(rng() % (nodes - 1))) % nodes;
      switch (rng() % 3) {
        case 0:
          network.cut_one_way(target, other, back);
          break;
        case 1:
          network.cut_one_way(other, target, back);
          break;
        default:
          network.cut(target, other, back);
      }
      break;
    }
  }
  std::vector<std::string> names;
  for (const NodeConfig& node : config.nodes) names.push_back(node.name);
  note("cut links: " + network.describe(names));
}

bool World::only_an_operator_can_recover() const {
  bool gone = false, stuck = true;
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    const Slot& slot = slots[i];
    if (slot.gone_for_good) {
      gone = true;
    } else if (listed(i)) {
      // A node removed from the member list has had its agent stop: only a person adding it
      // back makes it a candidate again (fresh seed 922828724: the one node with the gone
      // primary's timeline removed just after the primary went).
      stuck = stuck && slot.pg.wal_gap;
    }
  }
  return gone && stuck;
}

bool World::listed(int index) const {
  if (!settings.member_changes) return true;
  auto snapshot = const_cast<MemoryStore&>(store_).read(layout_.member_list());
  const StoredValue* stored = snapshot ? snapshot->find(layout_.member_list()) : nullptr;
  auto list = stored ? decode_member_list(stored->value) : std::nullopt;
  if (!list) return true;
  return std::any_of(list->nodes.begin(), list->nodes.end(),
                     [&](const NodeConfig& node) { return node.name == config.nodes[index].name; });
}

// What `tandem member` does on several machines (cli/member_command.cc, StoreMembers): the
// running list read, the change refused unless every agent runs it (every_agent_took), written
// by compare-and-set. Mostly a standby removed; a node removed before is added back, and its
// agent started by the person a moment later (its data kept: it rejoins). Never below two
// members, never the leader.
void World::change_members(int tries) {
  if (store_clock.stopped()) return;  // etcd down: the command fails, nothing changes
  auto snapshot = store_.read(layout_.prefix());
  if (!snapshot) return;
  ClusterView view = layout_.view(*snapshot);
  ClusterConfig running = view.member_list ? with_member_list(config, *view.member_list) : config;
  std::vector<int> outside, removable;
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    const std::string& name = config.nodes[i].name;
    if (running.find_node(name) == nullptr) {
      if (!slots[i].gone_for_good) outside.push_back(i);
    } else if (plan_member_remove(running, name, view) &&
               (running.nodes.size() > 3 || (outside.empty() && rng() % 2 == 0))) {
      removable.push_back(i);  // down to two at most: the smallest cluster quorum fencing keeps
    }
  }
  bool add = !outside.empty() && (removable.empty() || rng() % 2 == 0);
  if (!add && removable.empty()) return;
  int target = add ? outside[rng() % outside.size()] : removable[rng() % removable.size()];
  if (auto ok = change_member(target, add); !ok) {
    note("member change refused: " + ok.error().message);
    if (tries > 1) {
      schedule(clock.now + SimTime(1000), Kind::kCall, -1,
               [this, tries] { change_members(tries - 1); });
    }
  }
}

Status World::change_member(int target, bool add) {
  if (store_clock.stopped()) return fail(ErrorCode::kUnavailable, "etcd is down");
  auto snapshot = store_.read(layout_.prefix());
  if (!snapshot) return std::unexpected(snapshot.error());
  ClusterView view = layout_.view(*snapshot);
  ClusterConfig running = view.member_list ? with_member_list(config, *view.member_list) : config;
  const std::string& name = config.nodes[target].name;
  ClusterConfig next = running;
  if (add) {
    if (running.find_node(name) != nullptr) return fail(ErrorCode::kConflict, "a member");
    next.nodes.push_back(config.nodes[target]);
  } else {
    auto shrunk = plan_member_remove(running, name, view);
    if (!shrunk) return std::unexpected(shrunk.error());
    next = *shrunk;
  }
  if (auto ok = every_agent_took(running, layout_.list_acks(*snapshot), add ? "" : name); !ok) {
    return ok;
  }
  std::string value = encode_member_list(
      {.version = running.member_list + 1, .nodes = next.nodes, .previous = names_of(running)});
  auto written = view.member_list ? store_.compare_and_set(layout_.member_list(), value,
                                                           view.member_list_revision, std::nullopt)
                                  : store_.create(layout_.member_list(), value, std::nullopt);
  if (!written) return std::unexpected(written.error());
  note(fmt::format("member list {}: {} {}", running.member_list + 1, name,
                   add ? "added" : "removed"));
  if (add) {
    schedule(clock.now + random_ms(SimTime(200), SimTime(2000)), Kind::kCall, target,
             [this, target] { start_added_agent(target); });
  }
  return {};
}

// The person starts the added node's agent; one still stopping (it read that it was removed)
// is waited for, as `systemctl start` waits for the old process to go. One that never read it
// runs on and takes the new list itself.
void World::start_added_agent(int index) {
  const Slot& slot = slots[index];
  if (slot.alive && slot.agent && slot.agent->removed()) {
    schedule(clock.now + SimTime(500), Kind::kCall, index,
             [this, index] { start_added_agent(index); });
    return;
  }
  start_agent(index);
}

bool World::healthy() const {
  int primary = -1;
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    if (slots[i].pg.primary()) {
      if (primary >= 0) return false;
      primary = i;
    }
  }
  if (primary < 0 || clock.now < slots[primary].pg.ready_at) return false;
  auto snapshot = const_cast<MemoryStore&>(store_).read(layout_.prefix());
  if (!snapshot) return false;
  ClusterView view = layout_.view(*snapshot);
  const std::string& name = config.nodes[primary].name;
  if (!view.leader_is(name)) return false;
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    const Pg& server = slots[i].pg;
    if (i == primary || slots[i].gone_for_good || !listed(i)) continue;
    if (!server.running || !server.standby_signal || server.upstream != name ||
        server.not_streaming_since || !is_prefix(server.wal, slots[primary].pg.wal)) {
      return false;
    }
  }
  return true;
}

void World::freeze_first_promoter(SimTime how_long) {
  on_promote_requested = [this, how_long](int node) {
    if (frozen_promoter >= 0) return;
    frozen_promoter = node;
    slots[node].agent_frozen_from = clock.now;
    slots[node].agent_frozen_until = clock.now + how_long;
  };
}

void World::freeze_agent(int index, SimTime how_long) {
  note(fmt::format("  the agent of {} is frozen for {} ms", config.nodes[index].name,
                   how_long.count()));
  slots[index].agent_frozen_from = clock.now;
  slots[index].agent_frozen_until = clock.now + how_long;
}

void World::reload_by_hand(int index) {
  Pg& server = slots[index].pg;
  note(fmt::format("  {}'s PostgreSQL is reloaded by hand", config.nodes[index].name));
  if (server.running) {
    server.sync_names = server.sync_file;
    server.sync_any = server.sync_file_any;
  }
}

void World::request_switchover(const std::string& to) {
  auto snapshot = store_.read(layout_.prefix());
  if (store_clock.stopped()) return;  // the person's request fails
  if (snapshot && layout_.view(*snapshot).leader) {
    SwitchoverRequest request{.from = layout_.view(*snapshot).leader->name, .to = to};
    if (store_.put(layout_.switchover(), encode_switchover(request), SimTime(35000))) {
      wake_after_request(to);
    }
  }
}

// The CLI and the API wake every agent once a request is written (wake_agents), one machine
// only; the person runs on that machine (from -1: no link to cut).
void World::wake_after_request(const std::string& first) {
  if (multi_host()) return;
  if (!first.empty()) (void)send_wake(-1, first);
  for (const NodeConfig& node : config.nodes) {
    if (node.name != first) (void)send_wake(-1, node.name);
  }
}

void World::request_failover(const std::string& to) {
  note("a failover to " + to + " requested");
  auto snapshot = store_.read(layout_.prefix());
  if (store_clock.stopped() || !snapshot) return;  // the person's request fails
  ClusterView view = layout_.view(*snapshot);
  SwitchoverRequest request{.from = view.leader ? view.leader->name : "", .to = to, .force = true};
  if (store_.put(layout_.switchover(), encode_switchover(request), SimTime(35000))) {
    wake_after_request(to);
  }
}

bool World::start_cluster() {
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    schedule(random_ms(SimTime(0), SimTime(200)), Kind::kCall, i, [this, i] { start_agent(i); });
  }
  schedule(kTick, Kind::kReplicate, -1);
  schedule(kTick, Kind::kWrite, -1);
  // One seed in four bootstraps with one agent's store slow, its writes' answers sometimes lost.
  SimTime slow{0};
  if (rng() % 4 == 0) {
    slow = random_ms(SimTime(500), SimTime(3000));
    slots[rng() % slots.size()].store_slow_until = slow;
    // A fault of its own: the bootstrapping node's lease may lapse before the store answers
    // its creation (up to 3 s here, the TTL 1 s), and another node then takes over — once
    // (fresh seed 76000018508, counted as a fault too many before).
    ++promotion_budget_;
  }
  run_until(SimTime(3000) + 2 * slow);
  if (!healthy()) violation("the cluster did not bootstrap within 3 s (plus twice a slow store)");
  check_liveness();  // from now on, every 100 ms: scripts and random faults alike
  return healthy();
}

void World::start_adopted(SimTime primary_agent_at) {
  // Built by hand: a primary with its first record, every other node a running standby of it
  // with a copy; no agent anywhere.
  const std::string& primary = config.nodes[0].name;
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    Pg& server = slots[i].pg;
    server = Pg{};
    server.data = server.running = true;
    server.wal = {Record{1'000'000'000ULL, 1}};
    server.standby_signal = i > 0;
    if (i > 0) server.upstream = primary;
    slots[i].postmaster_starts = 1;
    slots[i].foreign_postmaster = true;
  }
  promoted(0, 1);
  // adopt on the primary's host tells the store: the mark first, then the lease without a TTL,
  // the claim and `initialize` (record_in_store).
  adoption_pending_ = true;
  if (!settings.adopt_without_mark) (void)store_.put(layout_.adopting(), primary, std::nullopt);
  (void)store_.create(layout_.leader(), primary, std::nullopt);
  (void)store_.create(layout_.timeline(), encode_timeline_claim(1, primary), std::nullopt);
  if (settings.synchronous)
    (void)store_.create(layout_.sync(), encode_sync(primary, {}), std::nullopt);
  (void)store_.create(layout_.initialize(), primary, std::nullopt);
  // Each standby's host: its agent started, which restarts the server as its own.
  SimTime at{0};
  for (int i = 1; i < static_cast<int>(slots.size()); ++i) {
    at += random_ms(SimTime(100), SimTime(1000));
    schedule(at, Kind::kCall, i, [this, i] { start_agent(i); });
  }
  schedule(std::max(primary_agent_at, at + SimTime(100)), Kind::kCall, 0,
           [this] { adopt_primary(); });
  schedule(kTick, Kind::kReplicate, -1);
  schedule(kTick, Kind::kWrite, -1);
  run_until(SimTime(3000));
  check_liveness();
}

// The primary's host: its agent started (once the host runs and reaches the store), which
// restarts its server in place; then the mark removed.
void World::adopt_primary() {
  if (host_frozen(0) || !network.connected(0, network.store()) || store_clock.stopped() ||
      slots[0].store_down_until > clock.now) {
    schedule(clock.now + SimTime(1000), Kind::kCall, 0, [this] { adopt_primary(); });
    return;
  }
  note("adopt: the primary's agent starts");
  start_agent(0);  // it restarts the server as its own (a host crash may have started it)
  watch_adoption_end();
}

void World::watch_adoption_end() {
  // The primary's agent removes the mark itself once it renews with the postmaster it started
  // (decide's end_adoption); adopt waits for that. The adoption is over then — or once another
  // node leads (a person's switchover meanwhile): the mark, naming a node that does not lead,
  // stops nobody, and that node's agent removes it when it leads again.
  auto snapshot = store_.read(layout_.prefix());
  if (!snapshot) return;  // cannot happen: the world's own store
  ClusterView view = layout_.view(*snapshot);
  const std::string& primary = config.nodes[0].name;
  bool runs = slots[0].alive && writable(0) && view.leader_is(primary) && !view.adopting;
  bool another_leads = slots[0].alive && view.leader && !view.leader_is(primary);
  if (runs || another_leads) {
    note("adopt: over");
    adoption_pending_ = false;
    return;
  }
  schedule(clock.now + SimTime(100), Kind::kCall, 0, [this] { watch_adoption_end(); });
}

std::size_t World::acknowledged_missing_on(int index) const {
  std::set<std::uint64_t> present;
  for (const Record& record : slots[index].pg.wal) present.insert(record.id);
  return static_cast<std::size_t>(std::ranges::count_if(
      acknowledged_, [&](std::uint64_t id) { return !present.contains(id); }));
}

ClusterView World::store_view() const {
  auto snapshot = const_cast<MemoryStore&>(store_).read(layout_.prefix(), layout_.history_prefix());
  return snapshot ? layout_.view(*snapshot) : ClusterView{};
}

int World::writable_primary() const {
  int found = -1;
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    if (!writable(i)) continue;
    if (found >= 0) return -1;
    found = i;
  }
  return found;
}

// The node's agent runs unhindered, its PostgreSQL may start, and it reaches the store, which
// answers it promptly.
bool World::up(int index) const {
  const Slot& slot = slots[index];
  return slot.alive && !slot.gone_for_good && !agent_frozen(index) && !host_frozen(index) &&
         slot.cycle_stalled_until <= clock.now && slot.pg_broken_until <= clock.now &&
         slot.store_down_until <= clock.now && slot.store_slow_until <= clock.now &&
         network.connected(index, network.store());
}

bool World::able_to_lead() const {
  if (store_clock.stopped()) return false;
  std::vector<int> up_nodes;
  std::size_t members = 0;
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    if (!listed(i)) continue;
    ++members;
    if (up(i)) up_nodes.push_back(i);
  }
  const std::vector<int>& up = up_nodes;
  if (up.size() < majority_of(members)) return false;
  for (int a : up) {
    for (int b : up) {
      if (!network.linked(a, b)) return false;
    }
  }
  // Synchronous mode: only a node the `sync` record names (its leader, its standby) is known to
  // hold every acknowledged commit; with none named but the leader, only that leader may lead
  // again — whoever else holds every commit by chance (a hung leader keeps the others waiting:
  // the price of the guarantee).
  std::optional<ClusterView> view;
  if (settings.synchronous) {
    auto snapshot = const_cast<MemoryStore&>(store_).read(layout_.prefix());
    if (!snapshot) return false;
    view = layout_.view(*snapshot);
  }
  return std::any_of(up.begin(), up.end(), [&](int i) {
    const Pg& server = slots[i].pg;
    if (!server.data || server.wal_gap) return false;
    if (!settings.synchronous) return true;
    const std::string& name = config.nodes[i].name;
    if (view->sync_revision != 0 && view->sync_leader != name && !view->sync_names(name)) {
      return false;
    }
    // Quorum commit: a named standby takes over once |S| - k other members froze, and only up
    // ones can.
    if (view->sync_quorum && view->sync_leader != name) {
      std::size_t others_up = 0;
      for (int j : up) {
        if (j != i && view->sync_names(config.nodes[j].name) && slots[j].pg.data) ++others_up;
      }
      if (others_up + *view->sync_quorum < view->sync_standbys->size()) return false;
    }
    std::set<std::uint64_t> present;
    for (const Record& record : server.wal) present.insert(record.id);
    return std::all_of(acknowledged_.begin(), acknowledged_.end(),
                       [&](std::uint64_t id) { return present.contains(id); });
  });
}

// Synchronous mode: the liveness rule (and a failover) trusts the `sync` record, so it must follow
// the cluster. A primary holding the lease, with a standby streaming from it, both up and
// connected, names a synchronous standby in the record within kSyncNamingBound; a bug that
// never names one again would otherwise pass as "nobody may lead".
void World::check_sync_record() {
  int primary = writable_primary();
  bool due = settings.synchronous && primary >= 0 && up(primary) && !store_clock.stopped();
  std::optional<ClusterView> view;
  if (due) {
    // The two keys it needs, not the whole prefix (every 100 ms: the members' records are many).
    auto snapshot = store_.read(layout_.leader());
    auto sync = store_.read(layout_.sync());
    if (snapshot && sync) {
      snapshot->entries.merge(sync->entries);
      view = layout_.view(*snapshot);
    }
    const std::string& name = config.nodes[primary].name;
    due = view && view->leader_is(name);
    bool streams = false;
    for (int j = 0; due && j < static_cast<int>(slots.size()); ++j) {
      const Pg& standby = slots[j].pg;
      streams =
          streams || (j != primary && up(j) && network.connected(j, primary) && standby.running &&
                      standby.standby_signal && !standby.wal_gap && standby.upstream == name &&
                      !standby.not_streaming_since && clock.now >= standby.ready_at);
    }
    due = due && streams && !(view->sync_leader == name && view->sync_names_any());
  }
  if (!due) {
    sync_unnamed_since_.reset();
    return;
  }
  if (!sync_unnamed_since_) sync_unnamed_since_ = clock.now;
  if (clock.now - *sync_unnamed_since_ >= kSyncNamingBound && !sync_reported_) {
    sync_reported_ = true;  // once a scenario
    violation(
        fmt::format("synchronous mode: {} has had a standby streaming for {} ms and the "
                    "sync record names none",
                    config.nodes[primary].name, kSyncNamingBound.count()));
  }
}

void World::check_liveness() {
  schedule(clock.now + SimTime(100), Kind::kCall, -1, [this] { check_liveness(); });
  if (adoption_pending_) {  // no failover is expected before the adoption ends
    able_since_.reset();
    return;
  }
  check_sync_record();
  if (writable_primary() >= 0) {
    able_since_ = clock.now;  // the bound counts from the last moment a primary was there
    liveness_reported_ = false;
    return;
  }
  if (!able_to_lead()) {
    able_since_.reset();
    liveness_reported_ = false;
    unable_at_ = clock.now;
    return;
  }
  if (!able_since_) able_since_ = clock.now;
  verdict_.longest_leaderless_while_able =
      std::max(verdict_.longest_leaderless_while_able, clock.now - *able_since_);
  if (clock.now - *able_since_ >= kLivenessBound && !liveness_reported_) {
    liveness_reported_ = true;
    violation(
        fmt::format("no writable primary for {} ms while a majority was up and connected "
                    "and one of them could lead",
                    (clock.now - *able_since_).count()));
  }
}

Verdict World::run() {
  if (settings.adopted) {
    start_adopted(random_ms(SimTime(1500), SimTime(9000)));
  } else {
    start_cluster();
  }
  SimTime window_end = clock.now + SimTime(6000);
  SimTime first_fault = window_end;
  for (int k = 0; k < settings.faults; ++k) {
    SimTime at = random_ms(clock.now, window_end);
    last_fault_ = std::max(last_fault_, at);
    first_fault = std::min(first_fault, at);
    schedule(at, Kind::kCall, -1, [this] { inject_fault(); });
  }
  // A second before the first fault, where there is that much time: a watchdog killed and the
  // agent frozen within one cycle is a double fault nothing can mend.
  if (settings.watchdogs_killed && first_fault - clock.now >= SimTime(1000)) {
    schedule(first_fault - SimTime(1000), Kind::kCall, -1, [this] { kill_watchdogs(); });
  }
  for (int k = 0; settings.rebuilds && k < 3; ++k) {
    int index = static_cast<int>(rng() % slots.size());
    schedule(random_ms(clock.now, window_end), Kind::kCall, index,
             [this, index] { rebuild_agent(index); });
  }
  for (int k = 0; settings.member_changes && k < 3; ++k) {
    schedule(random_ms(clock.now, window_end + SimTime(3000)), Kind::kCall, -1,
             [this] { change_members(); });
  }
  run_until(window_end + SimTime(5000));  // every restart has happened by then
  last_heal_ = std::max(last_heal_, network.last_heal());
  if (last_heal_ > clock.now) run_until(last_heal_);
  last_fault_ = std::max(last_fault_, last_heal_);
  // 60 s after the faults, or after the last moment nobody could lead, whichever is later: in
  // synchronous mode a node that alone may lead, its cycle stalled for longer than the bound,
  // keeps the others waiting until it runs again (the price of the guarantee, as in
  // able_to_lead; fresh seed 193321046: the taker stalled 30 s after naming itself in the sync
  // record, before its promotion). A cluster never able to lead still fails after 120 s.
  SimTime start = clock.now;
  auto deadline = [&] {
    return std::min(start + SimTime(120000), std::max(start, unable_at_) + SimTime(60000));
  };
  while (!healthy() && clock.now < deadline()) run_until(clock.now + SimTime(100));
  if (!healthy() && adoption_pending_ && slots[0].gone_for_good) {
    // The adopted primary's host went for good before its agent ran it: nobody can prove its
    // server stopped writing (no watchdog ever watched it), so no agent takes over.
    note(
        "no healthy cluster: the adopted primary's host is gone for good before its agent ran "
        "it; only an operator can end the adoption");
  } else if (!healthy() && only_an_operator_can_recover()) {
    // Every node left needs WAL that only the node gone for good had (a rewind found it
    // removed): no automation can make a primary of that; a person restores or forces one.
    note(
        "no healthy cluster, and none possible without an operator: every member left needs WAL "
        "that only a node gone for good had");
  } else if (!healthy()) {
    std::string states;
    for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
      const Pg& server = slots[i].pg;
      states +=
          fmt::format(" {}:{}{}{}tl{}/{}", config.nodes[i].name, server.running ? "up" : "down",
                      server.standby_signal ? "/standby-of-" + server.upstream : "/primary",
                      slots[i].alive ? "" : "/agent-dead", server.timeline(), server.wal.size());
    }
    violation(
        "no healthy cluster 60 s after the faults (and after the last moment nobody could lead):" +
        states);
  }
  verdict_.recovered_after = clock.now - last_fault_;
  if (verdict_.promotions > promotion_budget_) {
    violation(fmt::format("{} promotions for {} faults: a fault caused more than one",
                          verdict_.promotions - 1, settings.faults));
  }
  verdict_.acknowledged = static_cast<int>(acknowledged_.size());
  verdict_.answers = answers;
  verdict_.answers_at_rest = answers_at_rest;
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    if (!slots[i].pg.primary()) continue;
    became_primary(i);
    std::set<std::uint64_t> present;
    for (const Record& record : slots[i].pg.wal) present.insert(record.id);
    for (std::uint64_t id : acknowledged_) verdict_.lost_async += present.count(id) == 0;
  }
  return verdict_;
}

Verdict run_scenario(std::uint64_t seed, bool multi_host, bool rebuilds, bool member_changes,
                     bool adopted) {
  ScenarioSettings settings = settings_for(seed, multi_host);
  settings.rebuilds = settings.rebuilds && rebuilds;
  settings.member_changes = settings.member_changes && member_changes;
  settings.adopted = settings.adopted && adopted;
  World world(seed, settings);
  return world.run();
}

}  // namespace tandem::sim
