// A libpq connection that closes itself, and query results read by column name.
#pragma once

#include <libpq-fe.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace tandem {

// Builds a libpq connection string, quoting each value as libpq requires.
std::string make_conninfo(const std::map<std::string, std::string>& parameters);

// The parameters of a libpq connection string (libpq's own parser); nullopt if it does not
// parse.
std::optional<std::map<std::string, std::string>> parse_conninfo(const std::string& conninfo);

class QueryResult {
 public:
  QueryResult(std::vector<std::string> columns,
              std::vector<std::vector<std::optional<std::string>>> rows)
      : columns_(std::move(columns)), rows_(std::move(rows)) {}

  std::size_t size() const { return rows_.size(); }
  bool empty() const { return rows_.empty(); }
  // REQUIRES: row < size() and the query returned `column`. NULL is nullopt.
  const std::optional<std::string>& get(std::size_t row, std::string_view column) const;
  // Like get() with NULL read as "".
  std::string text(std::size_t row, std::string_view column) const;

 private:
  std::vector<std::string> columns_;
  std::vector<std::vector<std::optional<std::string>>> rows_;
};

// Not thread-safe: one thread uses a connection at a time.
class Connection {
 public:
  // Connect errors are kUnavailable, except a refused password (kPermissionDenied).
  static Result<Connection> open(const std::string& conninfo);

  Result<QueryResult> query(const std::string& sql,
                            const std::vector<std::string>& parameters = {});
  // For statements without results; `sql` may hold several statements when there are no
  // parameters.
  Status execute(const std::string& sql);
  // False once the connection is lost (the server closed it, the socket broke): reconnect.
  bool usable() const;

  // The SCRAM-SHA-256 verifier of a password, computed here so the password never reaches the
  // server (or its log) in clear text.
  Result<std::string> encrypt_password(const std::string& password, const std::string& role);

 private:
  explicit Connection(PGconn* conn) : conn_(conn, &PQfinish) {}
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn_;
};

}  // namespace tandem
