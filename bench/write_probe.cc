#include "write_probe.h"

#include <optional>

#include "pg/connection.h"

namespace tandem::bench {

WriteProbe::WriteProbe(std::string conninfo, std::chrono::milliseconds interval, std::string table)
    : conninfo_(std::move(conninfo)), interval_(interval), table_(std::move(table)) {
  auto connection = Connection::open(conninfo_);
  if (connection) {
    (void)connection->execute("CREATE TABLE IF NOT EXISTS " + table_ + " (seq bigint PRIMARY KEY)");
  }
}

void WriteProbe::start() {
  thread_ = std::thread([this] { run(); });
}

void WriteProbe::stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
}

void WriteProbe::run() {
  std::optional<Connection> connection;
  long sequence = 0;
  while (!stopping_.load()) {
    auto next = std::chrono::steady_clock::now() + interval_;
    ++sequence;
    WriteAttempt attempt{std::chrono::system_clock::now(), sequence, false, "", "", {}};
    if (!connection) {
      auto opened = Connection::open(conninfo_);
      if (opened) {
        connection.emplace(std::move(*opened));
      } else {
        attempt.error = opened.error().message;
      }
    }
    if (connection) {
      auto inserted = connection->query(
          "INSERT INTO " + table_ +
              " VALUES ($1) RETURNING current_setting('port') AS port, "
              "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tli",
          {std::to_string(sequence)});
      attempt.acknowledged = inserted.has_value();
      if (inserted) {
        attempt.server_port = inserted->text(0, "port");
        attempt.timeline = std::stol(inserted->text(0, "tli"));
      }
      if (!inserted) {
        attempt.error = inserted.error().message;
        connection.reset();
      }
    }
    attempt.answered_at = std::chrono::system_clock::now();
    {
      std::lock_guard lock(mutex_);
      attempts_.push_back(attempt);
    }
    std::this_thread::sleep_until(next);
  }
}

std::vector<WriteAttempt> WriteProbe::attempts() const {
  std::lock_guard lock(mutex_);
  return attempts_;
}

std::set<long> WriteProbe::acknowledged() const {
  std::set<long> sequences;
  for (const WriteAttempt& attempt : attempts()) {
    if (attempt.acknowledged) sequences.insert(attempt.sequence);
  }
  return sequences;
}

std::optional<std::set<long>> WriteProbe::missing_on(const std::string& conninfo) const {
  auto connection = Connection::open(conninfo);
  if (!connection) return std::nullopt;
  auto rows = connection->query("SELECT seq FROM " + table_);
  if (!rows) return std::nullopt;
  std::set<long> present;
  for (std::size_t row = 0; row < rows->size(); ++row) {
    present.insert(std::stol(rows->text(row, "seq")));
  }
  std::set<long> missing;
  for (long sequence : acknowledged()) {
    if (!present.contains(sequence)) missing.insert(sequence);
  }
  return missing;
}

std::optional<WriteAttempt> WriteProbe::first_failure_after(
    std::chrono::system_clock::time_point since) const {
  for (const WriteAttempt& attempt : attempts()) {
    if (attempt.at >= since && !attempt.acknowledged) return attempt;
  }
  return std::nullopt;
}

std::optional<WriteAttempt> WriteProbe::first_success_after(
    std::chrono::system_clock::time_point since) const {
  for (const WriteAttempt& attempt : attempts()) {
    if (attempt.answered_at >= since && attempt.acknowledged) return attempt;
  }
  return std::nullopt;
}

std::chrono::milliseconds WriteProbe::longest_without_write(
    std::chrono::system_clock::time_point from, std::chrono::system_clock::time_point to) const {
  auto longest = std::chrono::system_clock::duration::zero();
  auto last = from;
  for (const WriteAttempt& attempt : attempts()) {
    if (!attempt.acknowledged || attempt.answered_at <= from || attempt.answered_at > to) continue;
    longest = std::max(longest, attempt.answered_at - last);
    last = std::max(last, attempt.answered_at);
  }
  longest = std::max(longest, to - last);
  return std::chrono::duration_cast<std::chrono::milliseconds>(longest);
}

}  // namespace tandem::bench
